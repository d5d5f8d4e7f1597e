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
