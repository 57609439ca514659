"""ttfuse command line: see what fuse() does to a model.

    ttfuse scan  MODULE:OBJECT --input SHAPE[:DTYPE[:LAYOUT[:MEMORY]]] ... [--json FILE] [--patterns a,b]
    ttfuse graph MODULE:OBJECT --input ... --out fused.svg

MODULE is a Python file (examples/gpt_oss_moe.py) or an importable module (examples.gpt_oss_moe);
OBJECT a function, an object, or a class (instantiated with no arguments). Each --input is one
model argument in order: a tensor spec like 1x1x32x2880:bf16:tile:dram (dtype bf16|fp32|bf8,
layout tile|rm, memory dram|l1), or a constant: an int, a float, true/false or none.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp32": "float32", "float32": "float32",
           "bf8": "bfloat8_b", "bfloat8_b": "bfloat8_b"}
_LAYOUTS = {"tile": "TILE_LAYOUT", "rm": "ROW_MAJOR_LAYOUT", "row_major": "ROW_MAJOR_LAYOUT"}
_MEMORY = {"dram": "DRAM_MEMORY_CONFIG", "l1": "L1_MEMORY_CONFIG"}


class CLIError(Exception):
    pass


def parse_input(text: str):
    """One --input: a TensorSpec or a constant."""
    import ttnn

    from .specs import TensorSpec

    t = text.strip()
    low = t.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"-?\d+", t):
        return int(t)
    if re.fullmatch(r"-?(\d+\.\d*|\.\d+)(e-?\d+)?|-?\d+e-?\d+", low):
        return float(t)
    parts = t.split(":")
    dims = re.split(r"[x,]", parts[0])
    if not all(re.fullmatch(r"\d+", d) for d in dims):
        raise CLIError(f"--input {text!r}: expected SHAPE like 1x1x32x2880 (optionally :DTYPE:LAYOUT:MEMORY) or a constant")
    opts = [p.lower() for p in parts[1:]]
    if len(opts) > 3:
        raise CLIError(f"--input {text!r}: at most DTYPE:LAYOUT:MEMORY after the shape")
    chosen = ["bf16", "tile", "dram"]  # the defaults
    for i, (table, what) in enumerate(((_DTYPES, "dtype"), (_LAYOUTS, "layout"), (_MEMORY, "memory"))):
        if i < len(opts) and opts[i]:
            if opts[i] not in table:
                raise CLIError(f"--input {text!r}: unknown {what} {opts[i]!r}; one of {sorted(table)}")
            chosen[i] = opts[i]
    dtype, layout, memory = (getattr(ttnn, t[c]) for t, c in zip((_DTYPES, _LAYOUTS, _MEMORY), chosen))
    return TensorSpec(tuple(int(d) for d in dims), dtype, layout, memory)


def load_object(ref: str):
    if ":" not in ref:
        raise CLIError(f"{ref!r}: expected MODULE:OBJECT, e.g. examples/gpt_oss_moe.py:GptOssMoEDecode")
    mod_ref, obj_name = ref.rsplit(":", 1)
    if mod_ref.endswith(".py") or os.sep in mod_ref:
        path = os.path.abspath(mod_ref)
        if not os.path.exists(path):
            raise CLIError(f"no such file: {mod_ref}")
        sys.path.insert(0, os.getcwd())
        spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(mod_ref)
        except ImportError as e:
            raise CLIError(f"cannot import {mod_ref!r}: {e}")
    obj = module
    for part in obj_name.split("."):
        if not hasattr(obj, part):
            raise CLIError(f"{mod_ref} has no attribute {obj_name!r}")
        obj = getattr(obj, part)
    if isinstance(obj, type):
        try:
            obj = obj()
        except TypeError as e:
            raise CLIError(f"{obj_name} needs constructor arguments ({e}); point at an instance or a factory instead")
    return obj


def _fuse(args):
    import fusion

    model = load_object(args.target)
    inputs = [parse_input(t) for t in args.input]
    pats = [p.strip() for p in args.patterns.split(",")] if args.patterns else None
    return model, fusion.fuse(model, inputs, patterns=pats)


def _writable(path: str, flag: str) -> None:
    """Fail before the work, not after it, when an output file cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"{flag} {path}: folder {os.path.dirname(path) or '.'} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"{flag} {path}: is a folder; give a file name")
    if not os.access(folder, os.W_OK):
        raise CLIError(f"{flag} {path}: folder {os.path.dirname(path) or '.'} is not writable")


def cmd_scan(args) -> int:
    if args.json and args.json != "-":
        _writable(args.json, "--json")
    _model, fused = _fuse(args)
    print(fused.report)
    if args.json:
        text = fused.report.to_json()
        if args.json == "-":
            print(text)
        else:
            try:
                with open(args.json, "w") as f:
                    f.write(text)
            except OSError as e:
                raise CLIError(f"--json {args.json}: {e.strerror or e}") from None
            print(f"report written to {args.json}")
    return 0


def to_dot(gm, title: str, highlight: bool) -> str:
    """DOT text of a graph; fused nodes filled and labelled with their pattern."""
    from . import ttnn_ops

    lines = [f'subgraph "cluster_{title}" {{', f'label="{title}"; fontname="Helvetica";']
    for n in gm.graph.nodes:
        if n.op == "get_attr" and "literal" in n.meta:
            continue
        label = n.name if n.op != "call_function" else ttnn_ops.op_name(n.target).replace("ttnn.", "")
        spec = n.meta.get("spec")
        if hasattr(spec, "short"):
            label += f"\\n{spec.short()}"
        attrs = 'shape=box, fontname="Helvetica", fontsize=10'
        if highlight and n.meta.get("fused_by"):
            label += f"\\n[{n.meta['fused_by']}]"
            attrs += ', style=filled, fillcolor="#9be59b"'
        lines.append(f'"{title}_{n.name}" [label="{label}", {attrs}];')
        for a in n.all_input_nodes:
            if a.op == "get_attr" and "literal" in a.meta:
                continue
            lines.append(f'"{title}_{a.name}" -> "{title}_{n.name}";')
    lines.append("}")
    return "\n".join(lines)


def cmd_graph(args) -> int:
    import fusion

    _writable(args.out, "--out")
    model, fused = _fuse(args)
    before = fusion.trace(model, [parse_input(t) for t in args.input]).graph_module
    saved = f"{fused.report.saved_dispatches} dispatches, {fused.report.saved_bytes} bytes saved"
    dot = "digraph ttfuse {\ncompound=true; rankdir=TB;\n" + to_dot(before, "before", False) + "\n" + \
        to_dot(fused.graph_module, f"after ({saved})", True) + "\n}\n"
    out = args.out
    if out.endswith(".dot"):
        with open(out, "w") as f:
            f.write(dot)
        print(f"graph written to {out}")
        return 0
    fmt = os.path.splitext(out)[1].lstrip(".") or "svg"
    dot_bin = shutil.which("dot")
    if dot_bin is None:
        alt = os.path.splitext(out)[0] + ".dot"
        with open(alt, "w") as f:
            f.write(dot)
        raise CLIError(f"graphviz's `dot` is not installed, so {out} was not drawn; the DOT source is in {alt} "
                       "(install graphviz: apt-get install graphviz, which scripts/setup.sh does when it can)")
    proc = subprocess.run([dot_bin, f"-T{fmt}", "-o", out], input=dot, text=True, capture_output=True)
    if proc.returncode != 0:
        raise CLIError(f"dot failed: {proc.stderr.strip()}")
    print(fused.report)
    print(f"graph written to {out}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ttfuse", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (loguru)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, helptext in (("scan", cmd_scan, "trace and fuse a model, print the report"),
                               ("graph", cmd_graph, "draw the graph before and after fusing")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("target", help="MODULE:OBJECT")
        p.add_argument("--input", action="append", default=[], metavar="SHAPE[:DTYPE[:LAYOUT[:MEMORY]]]",
                       help="one per model argument, in order (or a constant)")
        p.add_argument("--patterns", help="comma-separated built-in pattern names (default: all)")
        if name == "scan":
            p.add_argument("--json", metavar="FILE", help="also write the report as JSON ('-' for stdout)")
        else:
            p.add_argument("--out", required=True, help="output file: .svg, .png, .pdf or .dot")
        p.set_defaults(fn=fn)
    args = parser.parse_args(argv)
    from .host import use_mock_cluster_if_no_hardware
    from .log import enable_logging

    use_mock_cluster_if_no_hardware()
    if args.verbose:
        enable_logging()
    try:
        return args.fn(args)
    except CLIError as e:
        print(f"ttfuse: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a FusionError or anything from the user's model: one clear line, no traceback
        from .errors import FusionError

        if isinstance(e, FusionError):
            print(f"ttfuse: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
