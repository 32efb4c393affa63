pytest_plugins = ["tests.fixtures_app", "tests.support.fixtures"]
