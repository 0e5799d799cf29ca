#!/usr/bin/env python
"""Name the tubes of a class-agnostic YTVIS results file with a frozen open_clip CLIP.

Inputs: a results list (``video_id``, ``score``, ``segmentations``) or a GT-style JSON with
``annotations`` (e.g. converted VideoCutLER pseudo tubes); a vocabulary (a YTVIS/LV-VIS JSON's
``categories`` or a names file, one category per line, synonyms comma-separated); the frames.
Output: YTVIS results with the top-k labels of every tube (<= 100 per video), written atomically.

Examples::

    python tools/name_tubes.py --results output/inference/results.json \\
        --vocab datasets/lvvis/val/val_instances.json --img_root datasets/lvvis/val/JPEGImages \\
        --out output/named.json
    python tools/name_tubes.py --results tubes.json --vocab my_names.txt --videos videos.json \\
        --img_root frames/ --out named.json --clip-model ViT-B-16 --clip-weights openai
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", required=True, help="class-agnostic results / GT-style tube JSON")
    p.add_argument("--vocab", required=True, help="YTVIS/LV-VIS JSON (categories) or names file")
    p.add_argument("--img_root", "--img-root", required=True, help="frame folder")
    p.add_argument("--out", required=True, help="named results JSON")
    p.add_argument("--videos", default=None,
                   help="JSON with 'videos' (file_names); default: --vocab's or --results' videos")
    p.add_argument("--clip-model", default="convnext_large_d_320", help="open_clip architecture")
    p.add_argument("--clip-weights", default="laion2b_s29b_b131k_ft_soup",
                   help="open_clip pretrained tag or local checkpoint file ('' = random)")
    p.add_argument("--input-size", type=int, default=0, help="CLIP input short side (0: native)")
    p.add_argument("--topk", type=int, default=5, help="labels per tube")
    p.add_argument("--score-exponent", type=float, default=0.5, help="a of p^a * s^(1-a)")
    p.add_argument("--aggregation", default="embedding", choices=["embedding", "probability"])
    p.add_argument("--frames-per-batch", type=int, default=4)
    p.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "wsovvis"),
                   help="text-bank cache folder ('' = none)")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from wsovvis.open_vocab import (DenseClip, TubeClassifier, build_text_bank, check_frames,
                                    load_clip, load_tubes, load_vocabulary, name_tubes_in_results,
                                    videos_from_document)
    from wsovvis.utils.io import atomic_write_json, read_json

    try:
        vocab = load_vocabulary(args.vocab)
        doc = read_json(args.results, "results file")
        tubes = load_tubes(doc, args.results)
        videos = None
        for src in (args.videos, args.vocab if args.vocab.lower().endswith(".json") else None):
            if src and videos is None:
                videos = videos_from_document(read_json(src, "videos JSON"))
        if videos is None:
            videos = videos_from_document(doc)
        if videos is None:
            raise ValueError("no video list: pass --videos (a JSON with 'videos') or a --vocab GT JSON")
        if not os.path.isdir(args.img_root):
            raise ValueError(f"--img_root {args.img_root} is not a folder")
        check_frames(tubes, videos, args.img_root)
        model, tokenizer = load_clip(args.clip_model, args.clip_weights, device=args.device)
        clip = DenseClip(model, input_size=args.input_size).to(args.device)
        text, owner = build_text_bank(clip, tokenizer, vocab, model_name=args.clip_model,
                                      weights=args.clip_weights, cache_dir=args.cache_dir)
        clf = TubeClassifier(clip=clip, vocabulary=vocab, text_embeddings=text, owner=owner,
                             score_exponent=args.score_exponent, topk=args.topk,
                             frames_per_batch=args.frames_per_batch, aggregation=args.aggregation)
        named = name_tubes_in_results(clf, tubes, videos, args.img_root, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    atomic_write_json(named, args.out)
    print(f"named {tubes.num_tubes} tubes of {len(tubes.by_video)} videos with {len(vocab)} "
          f"categories: {len(named)} detections -> {args.out}")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
