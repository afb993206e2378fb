import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def _pyro_state():
    """Each test starts from an empty param store, a fixed seed, validation on, one thread."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    pyro.enable_validation(True)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    pyro.clear_param_store()
