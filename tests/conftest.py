"""Shared fixtures."""
import pytest

from tests import factories


@pytest.fixture
def manager(db):
    return factories.UserFactory(username="manager")


@pytest.fixture
def customer(db):
    return factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
