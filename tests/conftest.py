pytest_plugins = ["tests.support.fixtures", "tests.fixtures_app"]
