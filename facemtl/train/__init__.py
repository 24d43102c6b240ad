"""Training: examples from every source, the trainer loop and its command."""
