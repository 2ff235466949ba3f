"""Progress bars: on unless ``progress=False`` or tqdm's own ``TQDM_DISABLE`` (read by tqdm at import)."""

import os
import subprocess
import sys

import pytest

from localizer.progress import bars_disabled, progress_bar

PROBE = ("from localizer.progress import bars_disabled, progress_bar; "
         "print(bars_disabled(), progress_bar(range(2)).disable, progress_bar(range(2), show=False).disable)")


@pytest.mark.parametrize("value, expected", [(None, "False False True"), ("1", "True True True"),
                                             ("0", "True True True"), ("", "False False True")])
def test_tqdm_disable_as_tqdm_reads_it(value, expected):
    # a fresh interpreter: tqdm reads TQDM_* when it is imported; "0" is bool("0"), i.e. True, to tqdm
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"} | ({} if value is None else {"TQDM_DISABLE": value})
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == expected.split()


def test_show_false_turns_a_bar_off_here_too():
    assert progress_bar(range(3), show=False).disable is True
    assert progress_bar(range(3)).disable is bars_disabled()


def test_count_takes_the_singular_for_one():
    from localizer.progress import count

    assert [count(1, "epoch"), count(13, "epoch"), count(1400, "update")] == ["1 epoch", "13 epochs", "1,400 updates"]
