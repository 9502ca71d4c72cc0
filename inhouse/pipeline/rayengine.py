"""Placeholder."""
from ..errors import MissingDependency


def require_ray():
    try:
        import ray  # noqa: F401
    except ImportError as e:
        raise MissingDependency("ray", "ray", "--engine ray") from e
