"""The server's side: the round loop, assembly of clients and their runners, aggregation,
evaluation, run outputs, cost estimates, estimate versus bill and per-client device quality."""
