"""`eeg2arm prepare` on the real recordings in ../shared/data/raw reproduces ../shared/data/bandpower (its recipe)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mne
import numpy as np
import pytest
import scipy.signal
from click.testing import CliRunner

from eeg2arm.cli import cli
from eeg2arm.features import DEFAULT_BANDS, band_power_frames

EYES = ["--event", "eyes_open", "--event", "eyes_closed"]  # the shared set's label order (sorted would swap them)
SETS = {  # name: (files under raw/, prepare options that match the README's table)
    "eyes_open_closed": ("eyes_open_closed/*_raw.fif", EYES),
    "eegmmidb_imagery": ("eegmmidb/S001/*.edf", ["--event", "T1=left_fist_imagery", "--event",
                                                 "T2=right_fist_imagery", "--tmin", "0", "--tmax", "4"]),
    "FingerMovements": ("FingerMovements/*-epo.fif", ["--frame-window", "0.2", "--frame-step", "0.1"]),
    "SelfRegulationSCP1": ("SelfRegulationSCP1/*-epo.fif", []),
    "KDD_Example": ("KDD_Example/*-epo.fif", ["--frame-window", "0.4", "--frame-step", "0.2"]),
}


def run_prepare(files, out: Path, *options: str):
    return CliRunner().invoke(cli, ["prepare", *map(str, files), "--out", str(out), *options])


def recipe(signal: np.ndarray, sfreq: float, window: float, step: float) -> np.ndarray:
    """The README's recipe written independently with scipy.signal.periodogram: (..., n) µV -> (..., F, T)."""
    w, s = round(window * sfreq), round(step * sfreq)
    frames = np.lib.stride_tricks.sliding_window_view(signal, w, axis=-1)[..., ::s, :]  # (..., T, w)
    freqs, psd = scipy.signal.periodogram(frames, sfreq, window="hann", nfft=max(w, round(sfreq)),
                                          detrend="constant", scaling="density", axis=-1)
    power = np.stack([psd[..., (freqs >= lo) & (freqs < hi)].mean(-1) for _, lo, hi in DEFAULT_BANDS], -2)
    return np.log10(power + 1e-12)  # (..., F, T)


@pytest.mark.parametrize("name", SETS)
def test_reproduces_shared_bandpower(name, raw_dir, bandpower_dir, tmp_path):
    pattern, options = SETS[name]
    files = sorted(raw_dir.glob(pattern))
    assert files, f"no raw files for {name}"
    result = run_prepare(files, tmp_path / "out", *options)
    assert result.exit_code == 0, result.output
    out, ref = tmp_path / "out", bandpower_dir / name
    X, y, groups = (np.load(out / f"{k}.npy") for k in ("X", "y", "groups"))
    meta, ref_meta = json.loads((out / "meta.json").read_text()), json.loads((ref / "meta.json").read_text())
    X_ref = np.load(ref / "X.npy")
    assert X.dtype == np.float32 and y.dtype == np.int64 and groups.dtype == np.int64
    assert X.shape == X_ref.shape
    err = float(np.abs(X - X_ref).max())
    assert err <= 1e-4, f"{name}: max abs difference {err}"
    np.testing.assert_array_equal(y, np.load(ref / "y.npy"))
    assert meta["classes"] == ref_meta["classes"] and meta["channels"] == ref_meta["channels"]
    assert meta["sfreq"] == ref_meta["sfreq"] and meta["shape"] == list(X.shape)
    assert [s["sha256"] for s in meta["source_files"]] == [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    # groups index the source file of each trial, in sorted order
    np.testing.assert_array_equal(groups, [[str(f) for f in files].index(src) for src, _ in meta["trial_sources"]])
    if "trial_sources" in ref_meta:  # eegmmidb: the same run and cue onset for every trial
        assert [(Path(src).name, t) for src, t in meta["trial_sources"]] == \
            [(Path(src).name, t) for src, t in ref_meta["trial_sources"]]


def test_band_power_frames_is_the_periodogram_recipe(raw_dir):
    """features.band_power_frames (MNE Welch segments) equals scipy's periodogram, for odd rates and gapped frames."""
    raw = mne.io.read_raw(raw_dir / "eyes_open_closed" / "sub-01_ses-01_task-EO_run-01_eeg_0-200s_raw.fif",
                          verbose="error")
    signal = raw.get_data(stop=3000, units="uV")  # (32, 3000)
    for sfreq, window, step in [(250.0, 0.5, 0.25), (112.5, 0.4, 0.2), (250.0, 0.2, 0.5)]:
        ours = band_power_frames(signal, sfreq, DEFAULT_BANDS, window, step)
        expected = recipe(signal, sfreq, window, step)
        assert ours.shape == expected.shape and ours.dtype == np.float32
        assert np.abs(ours - expected).max() <= 1e-4


@pytest.mark.parametrize("meas_date", [None, 0])
def test_cropped_recording_keeps_window_positions(raw_dir, bandpower_dir, tmp_path, meas_date):
    """A file cut out of a longer recording (first_time = 40 s) gives the windows at the same signal positions."""
    raw = mne.io.read_raw(raw_dir / "eyes_open_closed" / "sub-01_ses-01_task-EC_run-01_eeg_0-200s_raw.fif",
                          verbose="error")
    cropped = raw.crop(tmin=40.0).set_meas_date(meas_date)
    assert cropped.first_time == 40.0
    cropped.save(tmp_path / "cropped_raw.fif", verbose="error")
    result = run_prepare([tmp_path / "cropped_raw.fif"], tmp_path / "out", *EYES)
    assert result.exit_code == 0, result.output
    X, y = np.load(tmp_path / "out" / "X.npy"), np.load(tmp_path / "out" / "y.npy")
    X_ref = np.load(bandpower_dir / "X.npy")[10:50]  # EC windows 40-200 s (the EC file comes first, sorted)
    assert X.shape == X_ref.shape and np.abs(X - X_ref).max() <= 1e-4
    assert (y == 1).all()


@pytest.mark.parametrize("fmt", ["edf", "bdf"])
def test_edf_bdf_written_from_real_eeg(raw_dir, tmp_path, fmt):
    """40 s of the eyes-open run exported with MNE (EDF 16-bit / BDF 24-bit) and read back by prepare."""
    raw = mne.io.read_raw(raw_dir / "eyes_open_closed" / "sub-01_ses-01_task-EO_run-01_eeg_0-200s_raw.fif",
                          verbose="error").crop(0, 40, include_tmax=False).load_data()
    path = tmp_path / f"eyes_open.{fmt}"
    mne.export.export_raw(path, raw, verbose="error")
    result = run_prepare([path], tmp_path / "out", *EYES)
    assert result.exit_code == 0, result.output
    X, y = np.load(tmp_path / "out" / "X.npy"), np.load(tmp_path / "out" / "y.npy")
    back = mne.io.read_raw(path, verbose="error").get_data(units="uV")  # what the file holds, quantized
    expected = recipe(back[:, :10 * 1000].reshape(32, 10, 1000).transpose(1, 0, 2), 250.0, 0.5, 0.25)
    assert X.shape == (10, 32, 4, 15) and np.abs(X - expected).max() <= 1e-4
    assert (y == 0).all()


def test_channels_pick_a_common_set_in_order(raw_dir, bandpower_dir, tmp_path):
    eo = mne.io.read_raw(raw_dir / "eyes_open_closed" / "sub-01_ses-01_task-EO_run-01_eeg_0-200s_raw.fif",
                         verbose="error")
    eo.drop_channels(["Fp1"]).save(tmp_path / "eo_raw.fif", verbose="error")
    files = [raw_dir / "eyes_open_closed" / "sub-01_ses-01_task-EC_run-01_eeg_0-200s_raw.fif", tmp_path / "eo_raw.fif"]
    result = run_prepare(files, tmp_path / "out", *EYES, "--channels", "Oz,O1,Fz")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    ref_meta = json.loads((bandpower_dir / "meta.json").read_text())
    assert meta["channels"] == ["Oz", "O1", "Fz"]
    picks = [ref_meta["channels"].index(ch) for ch in meta["channels"]]
    X_ref = np.load(bandpower_dir / "X.npy")[:, picks]
    ec_rows, eo_rows = X_ref[:50], X_ref[50:]  # the reference set was built from EC then EO
    eo_first = str(files[1]) < str(files[0])  # prepare reads files in sorted path order, wherever they live
    X_ref = np.concatenate([eo_rows, ec_rows] if eo_first else [ec_rows, eo_rows])
    assert np.abs(np.load(tmp_path / "out" / "X.npy") - X_ref).max() <= 1e-4


def test_a_reference_uses_the_channels_every_file_has(raw_dir, tmp_path):
    """One eyes-open file lacks Fp1: an average reference of both files leaves Fp1 out of every file, with a
    warning, exactly as if neither file had it."""
    eyes = sorted(raw_dir.glob("eyes_open_closed/*_raw.fif"))  # EC, EO
    for path in eyes:
        mne.io.read_raw(path, verbose="error").drop_channels(["Fp1"]).save(tmp_path / f"no_fp1_{path.name}",
                                                                            verbose="error")
    mixed = run_prepare([eyes[0], tmp_path / f"no_fp1_{eyes[1].name}"], tmp_path / "mixed", *EYES, "--reference",
                        "average")
    assert mixed.exit_code == 0, mixed.output
    assert "WARNING: EEG channels Fp1 are missing or bad in some files: the 31 channels all files have" in mixed.output
    neither = run_prepare(sorted(tmp_path.glob("no_fp1_*")), tmp_path / "neither", *EYES, "--reference", "average")
    assert neither.exit_code == 0 and "WARNING" not in neither.output, neither.output
    X = {}
    for name in ("mixed", "neither"):
        meta = json.loads((tmp_path / name / "meta.json").read_text())
        assert "Fp1" not in meta["input_channels"] and len(meta["channels"]) == 31
        task = [Path(src).name.split("_task-")[1][:2] for src, _ in meta["trial_sources"]]  # files sort apart
        X[name] = np.load(tmp_path / name / "X.npy")[np.argsort(task, kind="stable")]  # EC trials, then EO
    np.testing.assert_array_equal(X["mixed"], X["neither"])  # float32 FIF copies hold the same samples


def test_resample_and_custom_bands(raw_dir, tmp_path):
    files = sorted(raw_dir.glob("eegmmidb/S001/*.edf"))
    result = run_prepare(files, tmp_path / "out", "--event", "T1", "--event", "T2", "--tmax", "4", "--resample",
                         "100", "--bands", "mu:8-13,beta:13-30")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["sfreq"] == 100.0 and meta["trial_samples"] == 400 and meta["classes"] == ["T1", "T2"]
    assert meta["bands"] == [["mu", 8.0, 13.0], ["beta", 13.0, 30.0]]
    assert np.load(tmp_path / "out" / "X.npy").shape == (45, 64, 2, 15)


def test_default_classes_are_sorted_names(raw_dir, tmp_path):
    files = sorted(raw_dir.glob("eegmmidb/S001/*.edf"))
    result = run_prepare(files, tmp_path / "out", "--tmax", "4")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["classes"] == ["T0", "T1", "T2"]
    assert meta["class_counts"] == {"T0": 45, "T1": 23, "T2": 22}


def bad_inputs(raw_dir: Path, tmp: Path) -> dict[str, tuple[list, list[str], str]]:
    """name: (files, options, a phrase the one-line error must contain)."""
    (tmp / "garbage.edf").write_bytes(b"not an EDF file at all")
    (tmp / "notes.txt").write_text("hello")
    eyes = sorted(raw_dir.glob("eyes_open_closed/*_raw.fif"))
    mmi = sorted(raw_dir.glob("eegmmidb/S001/*.edf"))
    kdd = sorted(raw_dir.glob("KDD_Example/*-epo.fif"))
    fingers = sorted(raw_dir.glob("FingerMovements/*-epo.fif"))
    eo = mne.io.read_raw(eyes[1], verbose="error").drop_channels(["Fp1"])
    eo.save(tmp / "eo_raw.fif", verbose="error")
    whole = mmi[0].read_bytes()
    (tmp / "S001R04.edf").write_bytes(whole[:len(whole) // 2])  # a copy cut to half its size
    return {
        "unreadable": ([tmp / "garbage.edf"], [], "cannot read"),
        "unsupported": ([tmp / "notes.txt"], [], "cannot read"),
        "missing": ([tmp / "absent.edf"], [], "not found"),
        "no matching events": (eyes, ["--event", "T1"], "no matching events"),
        "rates differ": (eyes + mmi[:1], [], "--resample"),
        "channels differ": ([eyes[0], tmp / "eo_raw.fif"], EYES, "channels differ between files"),
        "unknown channel": (mmi[:1], ["--channels", "Oz..,XYZ"], "no channel XYZ"),
        "shorter than a frame": (kdd, ["--frame-window", "1.0"], "shorter than one frame"),
        "event span shorter than a frame": (mmi, ["--tmax", "0.3"], "shorter than one frame"),
        "band above Nyquist": (fingers, ["--bands", "gamma:30-60"], "Nyquist"),
        "bad band syntax": (fingers, ["--bands", "gamma30-60"], "NAME:LO-HI"),
        "band edges swapped": (fingers, ["--bands", "mu:13-8"], "--bands mu:13-8: the low edge comes first (e.g. "
                                                                "mu:8-13)"),
        "tmin without tmax": (mmi, ["--tmin", "0"], "--tmin needs --tmax"),
        "span outside epochs": (kdd, ["--tmin", "0", "--tmax", "2"], "outside the epochs"),
        "not a number": (mmi, ["--tmax", "nan"], "--tmax must be a finite number"),
        "no channel named": (mmi, ["--channels", " , "], "--channels names no channel"),
        "Nyquist after --resample": (eyes, ["--resample", "60"], "Nyquist frequency 30 Hz of 60 Hz data"),
        "unknown feature": (kdd, ["--features", "slow,wavelet"], "--features 'slow,wavelet' must list"),
        "bad band-pass": (kdd, ["--bandpass", "30-8"], "--bandpass '30-8' must have 0 < LO < HI"),
        "band-pass above Nyquist": (kdd, ["--bandpass", "8-60"], "--bandpass edge 60 Hz must lie between 0 and"),
        "slow cut-off above Nyquist": (kdd, ["--features", "slow", "--slow-cutoff", "80"], "--slow-cutoff 80 Hz"),
        "csd without montage": (mmi, ["--reference", "csd"], "--reference csd needs electrode positions"),
        "unknown montage": (mmi, ["--montage", "nowhere_1020"], "not one of MNE's built-in montages"),
        "channel outside montage": (kdd, ["--montage", "colin27_1005"], "are not in montage colin27_1005"),
        "unknown reference channel": (mmi, ["--reference", "Cz"], "--channels/--reference name Cz"),
        "reference names no channel": (mmi, ["--reference", " , "], "--reference ' , ' names no channel"),
        "reference channel kept": (mmi, ["--reference", "Cz..", "--channels", "C3..,Cz.."],
                                   "--channels keeps the reference channel Cz.., which has no signal"),
        "truncated EDF": ([tmp / "S001R04.edf"], [], "is truncated"),
    }


@pytest.mark.parametrize("case", ["unreadable", "unsupported", "missing", "no matching events", "rates differ",
                                  "channels differ", "unknown channel", "shorter than a frame",
                                  "event span shorter than a frame", "band above Nyquist", "bad band syntax",
                                  "band edges swapped",
                                  "tmin without tmax", "span outside epochs", "not a number",
                                  "Nyquist after --resample", "no channel named", "unknown feature",
                                  "bad band-pass", "band-pass above Nyquist", "slow cut-off above Nyquist",
                                  "csd without montage", "unknown montage", "channel outside montage",
                                  "unknown reference channel", "reference names no channel", "reference channel kept",
                                  "truncated EDF"])
def test_bad_input_one_line_exit_2_no_output(case, raw_dir, tmp_path):
    files, options, phrase = bad_inputs(raw_dir, tmp_path)[case]
    parent = tmp_path / "outputs"
    parent.mkdir()
    result = run_prepare(files, parent / "out", *options)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and phrase in lines[0], result.output
    assert list(parent.iterdir()) == []  # neither the output folder nor a temp folder is left behind


def test_existing_output_folder_is_refused(raw_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = run_prepare(sorted(raw_dir.glob("KDD_Example/*-epo.fif")), tmp_path / "out")
    assert result.exit_code == 2 and "already exists" in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


MONTAGE = "colin27_1005"


def causal(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """scipy's sosfilt along time from the steady state of the first sample (the recipe's documented start)."""
    zi = scipy.signal.sosfilt_zi(sos).reshape(len(sos), *[1] * (x.ndim - 1), 2) * x[None, ..., :1]
    return scipy.signal.sosfilt(sos, x, axis=-1, zi=zi)[0]


def slow_mean(x: np.ndarray, sfreq: float, window: float, step: float) -> np.ndarray:
    w, s = round(window * sfreq), round(step * sfreq)
    return np.lib.stride_tricks.sliding_window_view(x, w, axis=-1)[..., ::s, :].mean(-1)[..., None, :]


@pytest.mark.parametrize("reference, bandpass, features, channels", [
    ("average", (8.0, 30.0), "bandpower", None),
    ("csd", None, "slow,bandpower", ["C3", "Cz", "C4"]),
    ("Cz", (1.0, 40.0), "slow", ["C3", "C4"]),
])
def test_recipes_reproduce_mne_on_a_whole_recording(reference, bandpass, features, channels, raw_dir, tmp_path):
    """The recipe written independently: MNE re-references (or takes the Laplacian of) the whole real recording,
    scipy's Butterworth filters run from its first sample, then trials are cut at the cues and framed."""
    edf = raw_dir / "eegmmidb" / "S001" / "S001R04.edf"
    options = ["--event", "T1", "--event", "T2", "--tmin", "0", "--tmax", "4", "--reference", reference,
               "--montage", MONTAGE, "--features", features, "--slow-cutoff", "3"]
    options += (["--bandpass", "-".join(map(str, bandpass))] if bandpass else [])
    options += (["--channels", ",".join(channels)] if channels else [])
    result = run_prepare([edf], tmp_path / "out", *options)
    assert result.exit_code == 0, result.output
    X = np.load(tmp_path / "out" / "X.npy")

    raw = mne.io.read_raw_edf(edf, preload=True, verbose="error")
    mne.datasets.eegbci.standardize(raw)  # MNE's own renaming of EEGMMIDB's names
    raw.set_montage(MONTAGE, verbose="error")
    if reference == "csd":
        raw = mne.preprocessing.compute_current_source_density(raw, verbose="error")
        scale = 1e6 * 1e-4  # V/m² -> µV/cm²
    else:
        raw.set_eeg_reference("average" if reference == "average" else [reference], projection=False,
                              verbose="error")
        scale = 1e6
    picks = channels or [c for c in raw.ch_names if c != reference]
    signal = raw.get_data(picks=picks) * scale  # (C, n)
    if bandpass:
        signal = causal(signal, scipy.signal.butter(4, bandpass, "bandpass", fs=160.0, output="sos"))
    slow = causal(signal, scipy.signal.butter(4, 3.0, "lowpass", fs=160.0, output="sos"))
    cues = [round(a["onset"] * 160) for a in raw.annotations if a["description"] in ("T1", "T2")]
    parts = {"bandpower": lambda: recipe(np.stack([signal[:, a:a + 640] for a in cues]), 160.0, 0.5, 0.25),
             "slow": lambda: slow_mean(np.stack([slow[:, a:a + 640] for a in cues]), 160.0, 0.5, 0.25)}
    expected = np.concatenate([parts[kind]() for kind in features.split(",")], axis=-2)  # (N, C, F, T)
    assert X.shape == expected.shape == (15, len(picks), {"bandpower": 4, "slow": 1, "slow,bandpower": 5}[features],
                                         15)
    np.testing.assert_allclose(X, expected, rtol=1e-5, atol=1e-4)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["channels"] == picks and len(meta["input_channels"]) == 64 and meta["input_channels"][8] == "C3.."
    assert meta["reference"] == reference and meta["features"] == features.split(",")


def test_slow_feature_of_epochs_starts_at_each_epoch(raw_dir, tmp_path):
    """Epochs share no timeline: each goes through the low-pass from its own first sample."""
    epo = raw_dir / "SelfRegulationSCP1" / "SelfRegulationSCP1_TRAIN-epo.fif"
    result = run_prepare([epo], tmp_path / "out", "--features", "slow,bandpower", "--slow-cutoff", "2",
                         "--tmin", "2.5", "--tmax", "5.5")  # the epochs span 2.0-5.5 s: filtered first, then cut
    assert result.exit_code == 0, result.output
    X = np.load(tmp_path / "out" / "X.npy")
    data = mne.read_epochs(epo, verbose="error").get_data(units="uV")  # (268, 6, 896)
    slow = causal(data, scipy.signal.butter(4, 2.0, "lowpass", fs=256.0, output="sos"))[..., 128:128 + 768]
    expected = np.concatenate([slow_mean(slow, 256.0, 0.5, 0.25), recipe(data[..., 128:128 + 768], 256.0, 0.5,
                                                                          0.25)], axis=-2)
    assert X.shape == expected.shape == (268, 6, 5, 11)
    np.testing.assert_allclose(X, expected, rtol=1e-5, atol=1e-4)


def test_default_recipe_is_recorded_and_reads_the_kept_channels(raw_dir, tmp_path):
    from eeg2arm.data import load_data_meta
    from eeg2arm.recipe import Recipe

    result = run_prepare(sorted(raw_dir.glob("KDD_Example/*-epo.fif")), tmp_path / "out", "--frame-window", "0.4",
                         "--frame-step", "0.2")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["features"] == ["bandpower"] and meta["reference"] == "none" and meta["bandpass"] is None
    assert meta["input_channels"] == meta["channels"] and meta["montage"] is None
    fields = load_data_meta(tmp_path / "out" / "meta.json")
    assert "input_channels" not in fields and fields["features"] == ["bandpower"]
    recipe = Recipe.from_fields(fields)  # band power of the kept channels as they are: no reference, no filter
    assert recipe == Recipe(recipe.sfreq, recipe.channels, recipe.channels, frame_window=0.4, frame_step=0.2)


@pytest.mark.parametrize("recipe", [
    dict(),
    dict(features=("slow", "bandpower"), slow_cutoff=2.0, bandpass=(1.0, 40.0), reference="csd", montage=MONTAGE,
         bands=(("mu", 8.0, 13.0),), input_channels=("C3..", "Cz..", "C4..", "Fc3.")),
    dict(features=("slow",), reference="Fc3.", frame_window=0.2, frame_step=0.5,
         input_channels=("C3..", "Cz..", "C4..", "Fc3.")),
])
def test_meta_json_records_the_recipe_it_is_read_back_into(recipe):
    """One mapping each way: Recipe.to_meta writes meta.json's keys, data.data_fields reads them as EEGConfig's
    fields (what train records), Recipe.from_fields makes the recipe again."""
    from eeg2arm.config import EEGConfig
    from eeg2arm.data import data_fields
    from eeg2arm.recipe import Recipe

    made = Recipe(**{"sfreq": 160.0, "input_channels": ("C3..", "Cz..", "C4.."), "channels": ("C3", "Cz", "C4"),
                     **recipe})
    meta = json.loads(json.dumps({**made.to_meta(), "classes": ["left", "right"]}))
    fields = data_fields(meta)
    config = EEGConfig(n_classes=2, n_electrodes=3, n_bands=made.n_features, **fields)
    back = Recipe.from_fields(fields)
    assert back == Recipe.from_fields(config.to_dict()) and back.to_meta() == made.to_meta()
    assert back == made or "bandpower" not in made.features  # without band power its bands are not recorded


def test_like_prepares_new_files_as_the_training_data(raw_dir, tmp_path):
    """Runs 4 and 8 set the recipe; run 12 prepared --like them equals its trials prepared with the same flags."""
    files = sorted(raw_dir.glob("eegmmidb/S001/*.edf"))
    flags = ["--event", "T2=right", "--event", "T1=left", "--tmin", "-0.5", "--tmax", "3.5", "--reference", "csd",
             "--montage", MONTAGE, "--channels", "C3,C4", "--features", "slow,bandpower", "--bandpass", "1-40",
             "--frame-step", "0.5", "--bands", "mu:8-13,beta:13-30", "--group-by", "subject"]
    for name, inputs in (("train", files[:2]), ("all", files)):
        result = run_prepare(inputs, tmp_path / name, *flags)
        assert result.exit_code == 0, result.output
    result = run_prepare(files[2:], tmp_path / "new", "--like", tmp_path / "train" / "meta.json")
    assert result.exit_code == 0, result.output
    new, train, every = (json.loads((tmp_path / d / "meta.json").read_text()) for d in ("new", "train", "all"))
    rows = [i for i, (src, _) in enumerate(every["trial_sources"]) if src == str(files[2])]
    np.testing.assert_array_equal(np.load(tmp_path / "new" / "X.npy"), np.load(tmp_path / "all" / "X.npy")[rows])
    np.testing.assert_array_equal(np.load(tmp_path / "new" / "y.npy"), np.load(tmp_path / "all" / "y.npy")[rows])
    keys = ("channels", "input_channels", "features", "bands", "reference", "montage", "bandpass", "classes",
            "events", "tmin_s", "tmax_s", "frame_window_s", "frame_step_s", "group_by")
    assert {k: new[k] for k in keys} == {k: train[k] for k in keys}
    assert new["classes"] == ["right", "left"] and new["group_names"] == ["S001"]


def test_like_takes_a_session_with_its_own_cue_names_and_channel_spellings(raw_dir, tmp_path):
    """A recording whose cues are called left/right and whose channels are spelled C3/CZ/C4, prepared --like a
    recipe of T1/T2 and C3../Cz../C4.. with --event NAME=CLASS and --rename: the same trials as the recording itself."""
    r04, r08 = sorted(raw_dir.glob("eegmmidb/S001/*.edf"))[:2]
    flags = ["--event", "T2=right", "--event", "T1=left", "--tmin", "0", "--tmax", "4", "--channels", "C3..,Cz..,C4..",
             "--bands", "mu:8-13,beta:13-30"]
    assert run_prepare([r04], tmp_path / "train", *flags).exit_code == 0
    like = ["--like", str(tmp_path / "train" / "meta.json")]
    assert run_prepare([r08], tmp_path / "same", *like).exit_code == 0
    raw = mne.io.read_raw(r08, preload=True, verbose="error")
    raw.annotations.rename({"T1": "cue_left", "T2": "cue_right"})
    raw.rename_channels(lambda name: name.strip(".").upper())
    raw.save(tmp_path / "session_raw.fif", fmt="double", verbose="error")
    (tmp_path / "map.txt").write_text("C3 C3..\nCZ Cz..\nC4 C4..\n")
    result = run_prepare([tmp_path / "session_raw.fif"], tmp_path / "session", *like, "--event", "cue_left=left",
                         "--event", "cue_right=right", "--rename-file", str(tmp_path / "map.txt"), "--rename", "XX=YY")
    assert result.exit_code == 0, result.output
    assert "no file has a channel XX to rename" in result.output
    for name in ("X.npy", "y.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "session" / name), np.load(tmp_path / "same" / name))
    session = json.loads((tmp_path / "session" / "meta.json").read_text())
    assert session["classes"] == ["right", "left"] and session["events"] == {"cue_right": "right", "cue_left": "left"}
    assert session["channel_renames"] == {"C3": "C3..", "CZ": "Cz..", "C4": "C4.."}


def like_mismatches(raw_dir: Path, tmp: Path) -> dict[str, tuple[list, list[str], str]]:
    """name: (files, options besides --like, a phrase of the one-line error)."""
    mmi = sorted(raw_dir.glob("eegmmidb/S002/*.edf"))
    raw = mne.io.read_raw(mmi[0], preload=True, verbose="error")
    raw.copy().drop_channels(["C4.."]).export(tmp / "no_c4.edf", verbose="error")
    raw.copy().resample(128, verbose="error").export(tmp / "at_128.edf", verbose="error")
    raw.copy().rename_channels(lambda name: name.strip(".").upper()).save(tmp / "spelled_raw.fif", verbose="error")
    return {
        "missing channel": ([tmp / "no_c4.edf"], [], "has no channel C4..: its channels are Fc5., "),
        "spelled otherwise": ([tmp / "spelled_raw.fif"], [], "has no channel Fc5., Fc3., Fc1., "
                              "Fcz., Fc2. ...: map them with --rename FC5=Fc5. --rename FC3=Fc3. --rename FC1=Fc1. "
                              "--rename FCZ=Fcz. ... (64 in all: a --rename-file of OLD NEW lines takes them at once)"),
        "other rate": ([tmp / "at_128.edf"], [], "run at 128 Hz but the --like recipe was made at 160 Hz: pass "
                                                 "--resample 160"),
        "other --resample": (mmi, ["--resample", "100"], "--resample 100 differs from the 160 Hz"),
        "recipe flag": (mmi, ["--tmin", "0", "--features", "slow", "--event", "T1"], "drop --tmin, --features"),
        "a class unmapped": (mmi, ["--event", "T1"], "onto the classes of --like "),
        "renames collide": (mmi, ["--rename", "C3..=C4.."], "cannot rename the channels of"),
        "a rename twice": (mmi, ["--rename", "C3..=C3", "--rename", "C3..=c3"], "map C3.. more than once"),
        "a class foreign": (mmi, ["--event", "T1", "--event", "T2=right"], "right is not one of them; give --event "
                                                                          "NAME=CLASS for each class"),
        "not prepare's meta": (mmi, ["--like", str(raw_dir.parent / "bandpower" / "meta.json")], "lacks"),
    }


@pytest.mark.parametrize("case", ["missing channel", "spelled otherwise", "other rate", "other --resample",
                                  "recipe flag", "a class unmapped", "renames collide", "a rename twice",
                                  "a class foreign",
                                  "not prepare's meta"])
def test_like_refuses_files_that_cannot_match(case, raw_dir, tmp_path):
    result = run_prepare(sorted(raw_dir.glob("eegmmidb/S001/*.edf"))[:1], tmp_path / "train", "--event", "T1",
                         "--event", "T2", "--tmax", "4", "--reference", "average")
    assert result.exit_code == 0, result.output
    files, options, phrase = like_mismatches(raw_dir, tmp_path)[case]
    like = [] if "--like" in options else ["--like", str(tmp_path / "train" / "meta.json")]
    parent = tmp_path / "outputs"
    parent.mkdir()
    result = run_prepare(files, parent / "out", *like, *options)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and phrase in lines[0], result.output
    assert list(parent.iterdir()) == []


def test_like_on_a_recording_without_a_whole_trial_names_the_span_it_needs(raw_dir, tmp_path):
    """The span is the --like recipe's, so the error does not send the user to --tmin/--tmax (which --like refuses);
    the warnings of the trials dropped come before it."""
    first = sorted(raw_dir.glob("eegmmidb/S001/*.edf"))[0]
    assert run_prepare([first], tmp_path / "train", "--event", "T1", "--event", "T2", "--tmax", "4").exit_code == 0
    raw = mne.io.read_raw(first, preload=True, verbose="error")
    raw.crop(0, 6).export(tmp_path / "short.edf", verbose="error")  # its first cue, not the 4 s after it
    result = run_prepare([tmp_path / "short.edf"], tmp_path / "out", "--like", tmp_path / "train" / "meta.json")
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    errors = [line for line in result.output.splitlines() if not line.startswith("WARNING: ")]
    assert errors == ["Error: no trials: the events lie outside the data or are shorter than the span: give "
                      "recordings whose cues lie a whole trial inside the data (the --like recipe's span)"]


def test_one_rate_comparison_for_files_streams_and_flags():
    """FIF keeps a rate as float32: 1000/3 Hz read back from a file is the rate a flag or stream gives as a double."""
    from eeg2arm.recordings import same_rate

    assert same_rate(1000 / 3, float(np.float32(1000 / 3))) and same_rate(160, 160.0)
    assert not same_rate(160.0, 160.01) and not same_rate(250.0, 256.0)


def test_a_reference_spec_is_recorded_in_one_spelling():
    from eeg2arm.recipe import parse_reference

    assert parse_reference(" C3.. , C4.., ") == "C3..,C4.." and parse_reference(" average ") == "average"


def test_a_deprecated_montage_name_is_one_warning_line(raw_dir, tmp_path):
    """MNE 1.13 deprecates standard_1005: the user reads one line saying so, not MNE's warnings with source lines."""
    from eeg2arm.recipe import standard_montage

    standard_montage.cache_clear()  # warned once per process: this test must be the first to ask for it
    edf = raw_dir / "eegmmidb" / "S001" / "S001R04.edf"
    result = CliRunner().invoke(cli, ["prepare", str(edf), "--out", str(tmp_path / "p"), "--event", "T1=left",
                                      "--event", "T2=right", "--tmin", "0", "--tmax", "4", "--reference", "csd",
                                      "--montage", "standard_1005", "--channels", "C3,Cz,C4"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if "standard_1005" in line]
    assert len(warned) == 1 and warned[0].startswith("WARNING: --montage standard_1005: ")
    assert "FutureWarning" not in result.output and np.load(tmp_path / "p" / "X.npy").shape == (15, 3, 4, 15)
