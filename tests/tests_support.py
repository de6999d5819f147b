"""Assertions shared by the CLI suites."""


def assert_clean_error(result, message: str) -> None:
    """Exit code 2, one line on stderr naming the problem, and no traceback."""
    assert result.code == 2, (result.code, result.out, result.err)
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    text = " ".join(lines)
    assert "Traceback" not in result.err and "Traceback" not in result.out
    assert message in text, text
    assert text.startswith("error: "), text
    assert len(" ".join(lines)) < 400
