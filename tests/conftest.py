pytest_plugins = ["tests.fixtures_app"]
