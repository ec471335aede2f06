"""``init`` and ``lock --write-spec``: a complete, commented ``requirements.toml`` from plain requirements.

Every table the format has is written out with what plain requirements would get, each with a comment that
says what it does, so a person edits a file instead of discovering its fields one error at a time. What it
writes loads back to the same spec (tested).
"""

from __future__ import annotations

import json

from immutable_installer.core.spec import LockSpec


def _q(value: str) -> str:
    """A TOML basic string (JSON's escaping is TOML's for these characters)."""
    return json.dumps(value, ensure_ascii=False)


def _list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def spec_text(spec: LockSpec) -> str:
    """The spec as a commented TOML file (docs/lock.md explains every field)."""
    lines = [
        "# The lock input of immutable-installer (docs/lock.md). Edit it, then:",
        "#   immutable-installer lock --spec THIS_FILE -o metadata/dependencies.json",
        "",
        f"name = {_q(spec.name)}                # names the manifest, bundles and images",
        "requirements = [",
        *[f"    {_q(r)}," for r in spec.requirements],
        "]",
        f"default_index = {_q(spec.default_index)}",
        *([] if spec.name_variant_after_torch else [f"default_variant = {_q(spec.default_variant)}"]),
        "",
        "[python]                            # the target interpreter; X.Y is read as X.Y.0 for Requires-Python",
        f"version = {_q(spec.python.version)}",
        f"implementation = {_q(spec.python.implementation)}",
        "",
    ]
    for platform in spec.platforms:
        lines += ["[[platforms]]                       # one per target (a lock for each; see lock --platform)",
                  f"name = {_q(platform.name)}",
                  f"tags = {_list(platform.tags)}",
                  "environment = { " + ", ".join(f"{k} = {_q(v)}" for k, v in sorted(platform.environment.items()))
                  + " }", ""]
    lines += ["[indexes]                           # name = URL; credentials never go here (netrc, variables)"]
    for index in spec.indexes:
        if index.file_url:
            lines += [f"{index.name} = {{ url = {_q(index.url)}, file_url = {_q(index.file_url)} }}"]
        else:
            lines += [f"{index.name} = {_q(index.url)}"]
    lines.append("")
    if spec.name_variant_after_torch:
        lines += ["# [variants] left out: one variant, named after the torch build the lock pins (cpu, or cu130 for",
                  "# PyPI's CUDA 13.0 build). To lock CPU and CUDA builds side by side, see docs/lock.md, e.g.:",
                  "# [variants.cpu]",
                  "# index = \"pytorch-cpu\"",
                  "# torch_packages = [\"torch\"]", ""]
    for sv in () if spec.name_variant_after_torch else spec.variants:
        v = sv.variant
        lines += [f"[variants.{v.name}]                  # a hardware variant: cpu, or cuXYZ with its CUDA version",
                  f"index = {_q(v.index)}                 # where its torch-family packages come from",
                  f"torch_packages = {_list(v.torch_packages)}",
                  f"local_label = {_q(sv.local_label)}             # cpu: torch==X becomes torch==X+cpu"]
        if v.cuda:
            lines += [f"cuda = {_q(v.cuda)}", f"min_driver = {_q(v.min_driver or '')}"]
        lines.append("")
    for group in spec.groups:
        lines += ["[[groups]]                          # install order; unlisted packages go where their deps allow",
                  f"name = {_q(group.name)}", f"packages = {_list(group.packages)}", ""]
    for rule in spec.blacklist:
        lines += ["[[blacklist]]                       # never installed, by any route (exit 3 with the chain)",
                  f"name = {_q(rule.pattern)}", f"reason = {_q(rule.reason)}",
                  f"import_names = {_list(rule.import_names)}", ""]
    verify = spec.verify
    lines += ["[verify]",
              f"cuda = {_q(verify.cuda)}                     # auto | required | optional | forbidden",
              "# what verify imports; left out, lock reads the requested distributions' modules from their wheels"
              if spec.imports_from_wheels else "# what verify imports (a failure fails the environment)",
              "# imports = []" if spec.imports_from_wheels else f"imports = {_list(verify.imports)}",
              f"secondary_imports = {_list(verify.secondary_imports)}   # imported too; a failure is a warning",
              f"gpu_alloc_mb = {verify.gpu_alloc_mb}",
              f"model_smoke_test = {str(verify.model_smoke_test).lower()}       # a tiny transformers forward pass",
              "# start-up files allowed to run code at every Python start (e.g. setuptools' distutils-precedence.pth)",
              f"allowed_pth = {_list(verify.allowed_pth)}", "",
              "[shims]",
              f"transformers_patcher = {str(spec.shims.transformers_patcher).lower()}",
              f"local_files_only = {str(spec.shims.local_files_only).lower()}",
              "blocked_modules = [  # kept absent in the environment (find_spec gives None)",
              *[f"    {{ name = {_q(b.name)}, mode = {_q(b.mode)}, reason = {_q(b.reason)} }},"
                for b in spec.shims.blocked_modules],
              "]"]
    if spec.shims.model_cache:
        lines.append(f"model_cache = {_q(spec.shims.model_cache)}")
    lines += ["",
              "[lock]",
              f"strict = {str(spec.strict).lower()}                      # a requested package held back is exit 1",
              "# distributions whose sdist may be built (their code runs, in a sandbox); \":all:\" for any",
              f"build = {_list(spec.build)}", ""]
    return "\n".join(lines)
