from importlib.metadata import version

import pytest

FLOORS = {"strawberry-graphql": (0, 327, 2), "starlette": (1, 5, 1), "pyjwt": (2, 15, 1)}


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_installed_versions_meet_security_floors(package: str) -> None:
    installed = tuple(int(p) for p in version(package).split(".")[:3])
    assert installed >= FLOORS[package], f"{package} {installed} < {FLOORS[package]}"
