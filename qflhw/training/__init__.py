"""A client's side of federated learning: data and partitions, the hybrid torch model and its
classical baseline, the client, its personalization, privacy and evaluation on its own test rows."""
