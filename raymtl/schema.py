"""Column and file names shared by featurization, training, reduce, results and dashboard."""

# Columns of FEATURES (format version 2: one Parquet row per clip, raymtl.data.stored) and of the
# patch rows the streams cut from them (one row per patch, as format version 1 stored them).
DATASET = "dataset"  # "esc50" | "tut2017"
SUBSET = "subset"  # "dev" | "eval"
CLIP = "clip"  # the file name exactly as the metadata gives it
SOURCE = "source"  # source recording id
FOLD = "fold"  # ESC fold; TUT: development fold whose evaluate list holds the clip; null for eval
LABEL = "label"  # int, index into the dataset's class list (manifest.json)
CLASS_NAME = "class_name"
IMAGE = "image"  # "mono" | "left" | "right" | "sum" | "diff"
PATCH_INDEX = "patch_index"  # 0-based position of the patch within its channel image
PATCH = "patch"  # float32 (n_mels=128, patch_frames=128) log-mel dB

# The patch rows of the streams (`raymtl.data.streams.scene_patches` and its kin).
FEATURE_COLUMNS = (DATASET, SUBSET, CLIP, SOURCE, FOLD, LABEL, CLASS_NAME, IMAGE, PATCH_INDEX, PATCH)
# The Parquet columns of FEATURES version 2: a clip's metadata, its frames (int32), its stored
# channel images ("mono"; "left", "right": int16 log-mel, binary) and its mixup keys
# ("patch_keys", list<uint64>). Partition folders hold the files (manifest.json lists them).
STORED_COLUMNS = (
    DATASET,
    SUBSET,
    CLIP,
    SOURCE,
    FOLD,
    LABEL,
    CLASS_NAME,
    "n_frames",
    "mono",
    "left",
    "right",
    "patch_keys",
)

# Files beside the Parquet parts in a FEATURES folder.
FEATURES_MANIFEST = "manifest.json"  # feature settings, class lists, counts, inputs
FEATURES_REPORT = "report.json"  # the featurize summary (clips, patches, rejects, seconds, bytes)
FEATURES_REJECTS = "rejects.csv"  # file,reason

# Training batches (the mixup transform and the single-task stream both produce these).
X = "x"  # float32 (B, 128, 128): a patch, or 0.5 * scene patch + 0.5 * event patch
TASK_LABEL = {"asc": "y_asc", "aec": "y_aec"}  # int64 (B,) class index per task
TASK_DATASET = {"asc": "tut2017", "aec": "esc50"}  # which dataset labels which task
