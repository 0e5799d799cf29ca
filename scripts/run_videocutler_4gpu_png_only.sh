#!/usr/bin/env bash
# Run VideoCutLER's video demo over one dataset split on N GPUs and keep only the mask PNGs.
#
# Usage: scripts/run_videocutler_4gpu_png_only.sh <split> [--dry-run]
#
# Frames:  $FRAMES_DIR/<video>/*.<FRAME_EXT>   (default $DATASET_DIR/<split>/JPEGImages)
# Output:  $OUT_ROOT/<split>/masks/<video>/mask_<frame>.png   palette PNGs, pixel k = instance k
#          $OUT_ROOT/<split>/done/<video>.done               per-video marker (rerun = resume)
#          $OUT_ROOT/<split>/logs/gpu<i>.log                 demo output, one section per video
#          $OUT_ROOT/<split>/shards/gpu<i>.txt               the videos given to GPU i
# Then:    python tools/convert_videocutler_png_to_json.py --mask_root $OUT_ROOT/<split>/masks ...
#
# Videos are dealt round-robin over the GPUs in sorted order. Each video is run by the demo into a
# scratch folder; its mask PNGs are moved into masks/<video> and only then the .done marker is
# written, so an interrupted video is redone on the next run. A video where the demo keeps 0
# instances (upstream crashes with IndexError after logging "detected 0 instances") is marked done
# with no masks and logged; any other failure is logged, left unmarked (retried on rerun) and makes
# the script exit 1 after all workers finish.
#
# Environment (defaults in brackets):
#   WSOVVIS_ROOT  repository root [the parent of this script's folder]
#   NUM_GPUS      number of workers [4];  GPU_IDS  comma list of device ids [0..NUM_GPUS-1]
#   CONF          demo --confidence-threshold [0.6]
#   DATASET_DIR   [$WSOVVIS_ROOT/datasets/lvvis];  FRAMES_DIR [$DATASET_DIR/<split>/JPEGImages]
#   FRAME_EXT     frame extension [jpg]; every video needs *.FRAME_EXT frames, case included
#                 (a video with e.g. .JPG frames stops the run before any work, also --dry-run)
#   CUTLER_DIR    VideoCutLER checkout [$WSOVVIS_ROOT/third_party/CutLER]
#   WEIGHTS       [$WSOVVIS_ROOT/third_party/weights/videocutler_m2f_rn50.pth]
#   CONFIG_FILE   [configs/imagenet_video/video_mask2former_R50_cls_agnostic.yaml, in DEMO_CWD]
#   DEMO_CMD      demo command, split on spaces [python demo_video/demo.py]
#   DEMO_CWD      folder the demo runs in [$CUTLER_DIR/videocutler]
#   OUT_ROOT      [$WSOVVIS_ROOT/outputs/videocutler_lvvis_png]
#   VIDEO_LIST    optional file with the video names to run (one per line) instead of all folders
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

SPLIT=""
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "error: unknown option $arg" >&2; usage >&2; exit 2 ;;
    *)
      if [[ -n "$SPLIT" ]]; then echo "error: more than one split given" >&2; exit 2; fi
      SPLIT="$arg" ;;
  esac
done
if [[ -z "$SPLIT" ]]; then
  echo "error: missing <split>" >&2; usage >&2; exit 2
fi

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WSOVVIS_ROOT="${WSOVVIS_ROOT:-$(dirname "$SCRIPT_DIR")}"
NUM_GPUS="${NUM_GPUS:-4}"
CONF="${CONF:-0.6}"
DATASET_DIR="${DATASET_DIR:-$WSOVVIS_ROOT/datasets/lvvis}"
FRAMES_DIR="${FRAMES_DIR:-$DATASET_DIR/$SPLIT/JPEGImages}"
FRAME_EXT="${FRAME_EXT:-jpg}"
CUTLER_DIR="${CUTLER_DIR:-$WSOVVIS_ROOT/third_party/CutLER}"
WEIGHTS="${WEIGHTS:-$WSOVVIS_ROOT/third_party/weights/videocutler_m2f_rn50.pth}"
CONFIG_FILE="${CONFIG_FILE:-configs/imagenet_video/video_mask2former_R50_cls_agnostic.yaml}"
DEMO_CMD="${DEMO_CMD:-python demo_video/demo.py}"
DEMO_CWD="${DEMO_CWD:-$CUTLER_DIR/videocutler}"
OUT_ROOT="${OUT_ROOT:-$WSOVVIS_ROOT/outputs/videocutler_lvvis_png}"
OUT="$OUT_ROOT/$SPLIT"
read -r -a DEMO <<< "$DEMO_CMD"

if ! [[ "$NUM_GPUS" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: NUM_GPUS must be a positive integer, got '$NUM_GPUS'" >&2; exit 2
fi
if [[ -n "${GPU_IDS:-}" ]]; then
  IFS=',' read -r -a GPUS <<< "$GPU_IDS"
  if [[ "${#GPUS[@]}" -ne "$NUM_GPUS" ]]; then
    echo "error: GPU_IDS has ${#GPUS[@]} entries but NUM_GPUS=$NUM_GPUS" >&2; exit 2
  fi
else
  GPUS=()
  for ((g = 0; g < NUM_GPUS; g++)); do GPUS+=("$g"); done
fi
if [[ ! -d "$FRAMES_DIR" ]]; then
  echo "error: frame folder not found: $FRAMES_DIR (set DATASET_DIR or FRAMES_DIR)" >&2; exit 2
fi
if [[ "$OUT" == *.jpg* ]]; then
  # upstream names masks with path.replace(".jpg", ".png") on the whole output path
  echo "error: OUT_ROOT must not contain '.jpg' (VideoCutLER rewrites it): $OUT" >&2; exit 2
fi
if [[ "$DRY_RUN" -eq 0 ]]; then
  if [[ ! -d "$DEMO_CWD" ]]; then
    echo "error: DEMO_CWD not found: $DEMO_CWD (see third_party/README.md)" >&2; exit 2
  fi
  if [[ ! -f "$WEIGHTS" ]]; then
    echo "error: WEIGHTS not found: $WEIGHTS (see third_party/README.md)" >&2; exit 2
  fi
fi

# ---- the video list, dealt round-robin over the GPUs ----
VIDEOS=()
if [[ -n "${VIDEO_LIST:-}" ]]; then
  while IFS= read -r v || [[ -n "$v" ]]; do
    v="${v%%#*}"; v="${v//[[:space:]]/}"
    [[ -n "$v" ]] && VIDEOS+=("$v")
  done < "$VIDEO_LIST"
else
  while IFS= read -r v; do VIDEOS+=("$v"); done < <(
    find "$FRAMES_DIR" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort)
fi
if [[ "${#VIDEOS[@]}" -eq 0 ]]; then
  echo "error: no videos in $FRAMES_DIR" >&2; exit 2
fi

# ---- every video must have frames the demo's glob finds: *.$FRAME_EXT, case included ----
# The demo globs "*.$FRAME_EXT" (case-sensitive) and names masks with .replace(".jpg", ".png"),
# so "00000.JPG" frames would be skipped or saved as JPEG; such videos stop the run up front.
declare -A N_EXACT=() N_OTHER=()
while IFS=$'\t' read -r v kind n; do
  if [[ "$kind" == exact ]]; then N_EXACT[$v]=$n; else N_OTHER[$v]=$n; fi
done < <(find "$FRAMES_DIR" -mindepth 2 -maxdepth 2 -type f -iname "*.$FRAME_EXT" -printf '%P\n' |
  awk -F/ -v ext=".$FRAME_EXT" '{
      k = (substr($2, length($2) - length(ext) + 1) == ext) ? "exact" : "other"; c[$1 "\t" k]++
    } END { for (x in c) print x "\t" c[x] }')
OTHER_CASE=() NO_FRAMES=()
for v in "${VIDEOS[@]}"; do
  if [[ -n "${N_OTHER[$v]:-}" ]]; then
    OTHER_CASE+=("$v (${N_OTHER[$v]} frames)")
  elif [[ -z "${N_EXACT[$v]:-}" ]]; then
    NO_FRAMES+=("$v")
  fi
done
if [[ "${#OTHER_CASE[@]}" -gt 0 ]]; then
  echo "error: ${#OTHER_CASE[@]} video(s) have frames whose extension differs from" \
    "FRAME_EXT=$FRAME_EXT only in case, which VideoCutLER's demo would skip or mis-name:" \
    "${OTHER_CASE[*]:0:10}; rename them to *.$FRAME_EXT" >&2
  exit 2
fi
if [[ "${#NO_FRAMES[@]}" -gt 0 ]]; then
  echo "error: ${#NO_FRAMES[@]} video(s) have no *.$FRAME_EXT frames in $FRAMES_DIR:" \
    "${NO_FRAMES[*]:0:10} (set FRAME_EXT, or leave them out of VIDEO_LIST)" >&2
  exit 2
fi

demo_args() {  # demo_args <video> <scratch dir>: the demo command line for one video
  printf '%s\0' "${DEMO[@]}" --config-file "$CONFIG_FILE" \
    --input "$FRAMES_DIR/$1/*.$FRAME_EXT" --output "$2" \
    --save-frames True --save-masks True --confidence-threshold "$CONF" \
    --opts MODEL.WEIGHTS "$WEIGHTS"
}

shard() {  # shard <i>: videos of worker i, one per line
  local i
  for ((i = $1; i < ${#VIDEOS[@]}; i += NUM_GPUS)); do printf '%s\n' "${VIDEOS[$i]}"; done
}

# run_video <gpu index> <video>: 0 when done (0 instances included), 1 on failure
run_video() {
  local g="$1" video="$2" log="$OUT/logs/gpu$1.log" scratch="$OUT/scratch/gpu$1"
  local vlog="$scratch/$video.log" rc=0 n
  rm -rf "${scratch:?}/$video" "$OUT/masks/.$video.tmp"
  mkdir -p "$scratch"
  local -a cmd=()
  while IFS= read -r -d '' a; do cmd+=("$a"); done < <(demo_args "$video" "$scratch")
  {
    echo "=== $(date -u +%FT%TZ) video $video on GPU ${GPUS[$g]}"
    printf '%q ' "${cmd[@]}"
    echo
  } >> "$log"
  (cd "$DEMO_CWD" && CUDA_VISIBLE_DEVICES="${GPUS[$g]}" "${cmd[@]}") > "$vlog" 2>&1 || rc=$?
  cat "$vlog" >> "$log"
  n=0
  if [[ -d "$scratch/$video" ]]; then
    n=$(find "$scratch/$video" -maxdepth 1 -name 'mask_*.png' | wc -l)
  fi
  if [[ "$rc" -ne 0 ]] && ! grep -q "detected 0 instances" "$vlog"; then
    echo "=== FAILED video $video (exit $rc); rerun to retry" >> "$log"
    rm -f "$vlog"
    return 1
  fi
  if [[ "$n" -eq 0 ]]; then
    echo "=== video $video: 0 instances kept (exit $rc); marked done without masks" >> "$log"
    echo "zero_instances" > "$OUT/done/$video.done"
  else
    # errexit is off inside `if run_video`: check every step before writing the marker
    if ! { mkdir -p "$OUT/masks/.$video.tmp" \
        && find "$scratch/$video" -maxdepth 1 -name 'mask_*.png' \
          -exec mv -t "$OUT/masks/.$video.tmp" {} + \
        && rm -rf "${OUT:?}/masks/$video" \
        && mv "$OUT/masks/.$video.tmp" "$OUT/masks/$video"; }; then
      echo "=== FAILED video $video: cannot move its masks" >> "$log"
      return 1
    fi
    echo "=== video $video: $n mask PNGs" >> "$log"
    echo "masks $n" > "$OUT/done/$video.done"
  fi
  rm -rf "${scratch:?}/$video" "$scratch/${video}_visualization.mp4" "$vlog"
  return 0
}

worker() {  # worker <gpu index>: run every pending video of the shard, keep going on failures
  local g="$1" video failed=0 done_n=0
  while IFS= read -r video; do
    [[ -f "$OUT/done/$video.done" ]] && continue
    if run_video "$g" "$video"; then done_n=$((done_n + 1)); else failed=$((failed + 1)); fi
  done < "$OUT/shards/gpu$g.txt"
  echo "[gpu${GPUS[$g]}] finished: $done_n videos run, $failed failed (log: $OUT/logs/gpu$g.log)"
  [[ "$failed" -eq 0 ]]
}

echo "split $SPLIT: ${#VIDEOS[@]} videos from $FRAMES_DIR"
echo "$NUM_GPUS GPU(s) (${GPUS[*]}), CONF=$CONF"
echo "masks -> $OUT/masks"
if [[ "$DRY_RUN" -eq 1 ]]; then
  for ((g = 0; g < NUM_GPUS; g++)); do
    total=0 pending=0
    while IFS= read -r video; do
      total=$((total + 1))
      [[ -f "$OUT/done/$video.done" ]] && continue
      pending=$((pending + 1))
      cmd=()
      while IFS= read -r -d '' a; do cmd+=("$a"); done < <(demo_args "$video" "$OUT/scratch/gpu$g")
      printf '[gpu%s] cd %q && CUDA_VISIBLE_DEVICES=%s' "${GPUS[$g]}" "$DEMO_CWD" "${GPUS[$g]}"
      printf ' %q' "${cmd[@]}"
      echo
    done < <(shard "$g")
    echo "[gpu${GPUS[$g]}] $pending of $total videos to run"
  done
  exit 0
fi

mkdir -p "$OUT/masks" "$OUT/done" "$OUT/logs" "$OUT/shards" "$OUT/scratch"
PIDS=()
for ((g = 0; g < NUM_GPUS; g++)); do
  shard "$g" > "$OUT/shards/gpu$g.txt"
  worker "$g" &
  PIDS+=("$!")
done
status=0
for pid in "${PIDS[@]}"; do wait "$pid" || status=1; done
n_done=$(find "$OUT/done" -name '*.done' | wc -l)
n_zero=$(grep -l zero_instances "$OUT"/done/*.done 2>/dev/null | wc -l || true)
echo "split $SPLIT: $n_done / ${#VIDEOS[@]} videos done ($n_zero with 0 instances)"
if [[ "$status" -ne 0 ]]; then
  echo "some videos failed; see $OUT/logs/gpu*.log and rerun to retry them" >&2
fi
exit "$status"
