"""One optimizer step on one device: the evaluator that turns a step into one provider job,
gradients, shot allocation, the budget ledger, the run journal, retries, and error mitigation."""
