"""auxrun: auxiliary-task transfer learning on graph neural networks."""

__version__ = "0.1.0"
