"""bluegreen: blue-green deployments for Kubernetes, with instant, verified cutovers."""

__version__ = "0.1.0"
