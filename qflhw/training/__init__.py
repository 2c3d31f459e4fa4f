"""A client's side of federated learning: data and partitions, the hybrid torch model, the client."""
