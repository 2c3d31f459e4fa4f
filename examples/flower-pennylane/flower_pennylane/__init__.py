"""Flower's quickstart-pennylane task on qflhw devices: each client on its own (fake) QPU."""
