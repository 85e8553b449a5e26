"""Shared pytest configuration: fixtures live in plugin modules under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.real_servers",
    "tests.fixtures.core",
    "tests.fixtures.registry",
    "tests.fixtures.kube",
    "tests.fixtures.jobs",
    "tests.fixtures.browser",
    "tests.fixtures.notify",
    "tests.fixtures.servers",
    "tests.fixtures.webservers",
    "tests.fixtures.oidc",
]
