"""``bench/quality.py`` end to end on a tiny scan: its report keeps the promised keys.

Why: the headline JSON is what people paste and compare across runs; a renamed key or a
ceiling computed on another grouping than the PINN's would silently break those comparisons.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import quality  # noqa: E402
from bench.quality_runs import BUDGETS, Budget  # noqa: E402

HEADLINE_KEYS = {"ssim_amp_gs1", "ssim_amp_gs2", "epie_ssim_amp", "probe", "free_fit_ssim_amp_gs1",
                 "free_fit_ssim_amp_gs2", "pinn_over_free_fit_gs1", "pinn_over_free_fit_gs2", "n_patterns", "budget"}


def test_the_last_line_is_one_json_object_with_the_ceiling_beside_each_pinn_score(tmp_path, capsys):
    argv = ["--budget", "quick", "--n-patterns", "16", "--epochs-gs1", "1", "--epochs-gs2", "1", "--no-low-dose",
            "--free-fit-steps", "5", "--epie-epochs", "2", "--out-dir", str(tmp_path)]
    assert quality.main(argv) == 0
    headline = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert HEADLINE_KEYS <= set(headline), HEADLINE_KEYS - set(headline)
    assert headline["probe"] == "diffuser" and headline["n_patterns"] == 16
    for gridsize in (1, 2):
        ratio = headline[f"ssim_amp_gs{gridsize}"] / headline[f"free_fit_ssim_amp_gs{gridsize}"]
        assert headline[f"pinn_over_free_fit_gs{gridsize}"] == pytest.approx(ratio, abs=2e-3)
    record = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert [fit["gridsize"] for fit in record["free_fit"]] == [1, 2]
    assert [fit["n_groups"] for fit in record["free_fit"]] == [run["n_groups"] for run in record["pinn"]]
    assert record["budget"]["probe"] == "diffuser" and record["budget"]["free_fit_steps_gs2"] == 5


@pytest.mark.parametrize("field", ["probe", "lr_schedule"])
def test_an_unknown_probe_or_schedule_is_refused_naming_the_choices(field):
    with pytest.raises(ValueError, match=f"{field}='nope' is unknown"):
        Budget(**{**vars(BUDGETS["quick"]), field: "nope"})
