import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cropper():
    from detectors.faces import FaceCropper

    return FaceCropper()


@pytest.fixture(scope="session")
def astronaut():
    from tests.fixtures import astronaut

    return astronaut()


@pytest.fixture(scope="session")
def start_app(tmp_path_factory):
    """Start ``python app.py`` on a free loopback port with extra arguments; returns (url, process, home).

    Each app gets its own HOME and TMPDIR, so tests can check what it writes. Stopped at session end.
    """
    from tests.fixtures import launch_app

    started = []

    def start(*args: str, env: dict[str, str] | None = None):
        app = launch_app(tmp_path_factory.mktemp("app"), args, env=env)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture(scope="session")
def app_server(start_app):
    """The app as shipped (default queue and concurrency), shared by the browser and load tests."""
    return start_app()
