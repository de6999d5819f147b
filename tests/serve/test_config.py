"""The settings of ``lm serve`` check themselves: each broken one is named with its fix."""

from __future__ import annotations

import pytest

from lm.errors import LMError
from lm.serve.config import ServeConfig


@pytest.mark.parametrize("values, message", [
    ({"limit_num": 0}, "--limit-num must be at least 1, not 0"),
    ({"limit_seconds": 0}, "--limit-seconds must be a number of seconds > 0, not 0"),
    ({"port": 70000}, "--port must be a port number, 0 to 65535, not 70000"),
])
def test_a_broken_setting_is_refused_in_one_line(values, message):
    with pytest.raises(LMError) as refused:
        ServeConfig(**values).check()
    assert str(refused.value) == message
    ServeConfig(port=0, limit_seconds=0.5).check()  # any free port, half a second: fine
