"""The method registry refuses a second method under a taken name and can unregister one, like
Keras's quantizer registry (issue 35)."""

import pytest

from lightcompress.errors import OptionError
from lightcompress.factorization.methods import (Method, get_method, known_methods, register_method,
                                                 unregister_method)


class Toy(Method):
    name = "toy-registry-method"


def test_a_name_is_registered_once_and_unregistered_cleanly():
    before = known_methods()
    toy = register_method(Toy())
    try:
        assert get_method("toy-registry-method") is toy
        with pytest.raises(OptionError, match="a method named 'toy-registry-method' is already registered"):
            register_method(Toy())
        with pytest.raises(OptionError, match="'svd' is already registered"):
            register_method(type("Other", (Method,), {"name": "svd"})())
        assert get_method("svd").name == "svd"  # the built-in is untouched
    finally:
        assert unregister_method("toy-registry-method") is toy
    assert known_methods() == before
    with pytest.raises(OptionError, match="method='toy-registry-method' is not registered"):
        unregister_method("toy-registry-method")
