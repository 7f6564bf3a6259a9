"""The docs stay true: links resolve, named commands are installed, flag tables match the parsers.

What the checks read, in README.md and docs/*.md, outside fenced code blocks unless said otherwise:

- **Links** are ``[text](target)`` and ``![alt](target)`` outside inline code. A target with a scheme
  (``https:``, ``mailto:``) is not checked. Any other target is a path relative to the file's folder that must
  exist inside the repository; a ``#anchor`` (alone, or after a ``.md`` path) must be one of that file's heading
  anchors as GitHub makes them: the heading's text without markup, lowercased, every character that is not a
  letter, digit, ``_``, ``-`` or space removed, spaces turned into ``-``, and ``-1``, ``-2``, ... added to repeats
  (the rule of GitHub's renderer; examples from comrak's ``src/tests/header_ids.rs`` and github-slugger below).
  README links every docs page.
- **Installed commands** are the words ``fairseq-tokendrop-NAME`` (lowercase NAME) anywhere, code blocks
  included; each must be a key of setup.py's ``COMMANDS`` (read with ``ast``, as test_installed_wheel.py
  does), and docs/usage.md names every key.
- **Flag tables** are markdown tables whose header's first cell is ``flag``. The first cell of each row names one
  or more flags, each inside backticks as ``--flag`` (optionally followed by a metavar: ``--token-drop P``).
  Every flag so named must be declared by the plugin's parsers: the model's ``TokenDropRobertaModel.add_args``
  (RoBERTa's flags included), the criterion's ``MaskedLmTokenDropConfig``, the task's
  ``MaskedLMTokenDropConfig`` (fairseq's ``MaskedLMConfig`` included), ``--optimizer lamb``'s ``LambConfig`` and
  ``--lr-scheduler mlperf_polynomial``'s ``MlperfPolynomialConfig``, a field ``a_b`` being ``--a-b``. And every
  flag the plugin adds itself (the model's beyond ``RobertaModel.add_args``, the criterion's, the task's beyond
  ``MaskedLMConfig``, LAMB's beyond fairseq's ``FairseqLAMB``, the schedule's but ``--lr``) must be in some flag
  table.
- **Hydra configs** (``examples/config/**/*.yaml``) list every field the plugin adds, under its section: the
  model's ``TokenDropConfig`` under ``model``, the criterion's ``MaskedLmTokenDropConfig`` under ``criterion``,
  the task's fields beyond ``MaskedLMConfig`` under ``task``. fairseq-hydra-train imports the plugin only after
  hydra has composed the config in struct mode, so a field missing there takes ``+key=value``, not
  ``key=value``, and the docs promise plain overrides.
- **Numbers README repeats**: README is cut into sections at its headings; every number in a section's prose
  and tables (one with a decimal point or an exponent, or of three digits or more; link targets and fenced code
  left out) must appear, as the same token, in a docs page that section links. A number that drifted on its
  page, or was never on one, fails.

No process is started: the parsers are read in this Python.
"""
import argparse
import ast
import dataclasses
import re
from pathlib import Path
from typing import Dict, Iterable, List, Set, Tuple
from urllib.parse import unquote

from conftest import REPO

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
COMMAND = re.compile(r"\bfairseq-tokendrop-[a-z0-9]+(?:-[a-z0-9]+)*")
NUMBER = re.compile(r"(?<![\w.#/-])\d+(?:,\d{3})*(?:\.\d+)?(?:e-?\d+)?")


def doc_files(repo: Path = REPO) -> List[Path]:
    return [repo / "README.md"] + sorted((repo / "docs").glob("*.md"))


def prose_lines(text: str) -> Iterable[Tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        opened = FENCE.match(line)
        if fence:
            if opened and opened.group(1) == fence:
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        yield number, line


def heading_anchor(heading: str) -> str:
    """GitHub's anchor of a heading's text, before repeats are numbered."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = text.replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def heading_anchors(text: str) -> Set[str]:
    """Every anchor of a markdown file's headings, repeats numbered as GitHub numbers them."""
    taken: Set[str] = set()
    last_number: Dict[str, int] = {}
    for _, line in prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = anchor = heading_anchor(match.group(2))
        number = last_number.get(base, 0)
        while anchor in taken:
            number += 1
            anchor = f"{base}-{number}"
        last_number[base] = number
        taken.add(anchor)
    return taken


def link_targets(text: str) -> Iterable[Tuple[int, str]]:
    for number, line in prose_lines(text):
        for match in LINK.finditer(CODE_SPAN.sub("", line)):
            yield number, match.group(1)


def link_problems(md_file: Path, repo: Path = REPO) -> List[str]:
    """One line per link of ``md_file`` that does not resolve."""
    problems = []
    for number, target in link_targets(md_file.read_text()):
        if SCHEME.match(target):
            continue
        where = f"{md_file.relative_to(repo)}:{number}: {target}"
        path_part, _, anchor = target.partition("#")
        linked = (md_file.parent / unquote(path_part)).resolve() if path_part else md_file
        if not linked.is_relative_to(repo.resolve()):
            problems.append(f"{where}: points outside the repository")
        elif not linked.exists():
            problems.append(f"{where}: no such file")
        elif anchor:
            if linked.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not markdown")
            elif unquote(anchor) not in heading_anchors(linked.read_text()):
                problems.append(f"{where}: no heading with anchor #{anchor}")
    return problems


def linked_files(md_file: Path) -> Set[Path]:
    return {(md_file.parent / unquote(t.partition("#")[0])).resolve()
            for _, t in link_targets(md_file.read_text()) if not SCHEME.match(t) and t.partition("#")[0]}


def installed_commands(repo: Path = REPO) -> Set[str]:
    tree = ast.parse((repo / "setup.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "COMMANDS")
    return {f"fairseq-tokendrop-{name}" for name in ast.literal_eval(node.value)}


def command_problems(texts: Dict[str, str], commands: Set[str]) -> List[str]:
    """One line per ``fairseq-tokendrop-NAME`` in ``texts`` (name -> text) that is not an installed command."""
    return [f"{name}:{number}: {word} is not in setup.py's COMMANDS"
            for name, text in texts.items()
            for number, line in enumerate(text.splitlines(), 1)
            for word in COMMAND.findall(line) if word not in commands]


def table_cells(line: str) -> List[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def flag_table_rows(text: str) -> Iterable[Tuple[int, str]]:
    """(line number, first cell) of every body row of every table whose header's first cell is ``flag``."""
    in_flag_table, header_seen = False, False
    for number, line in prose_lines(text):
        if not line.strip().startswith("|"):
            in_flag_table, header_seen = False, False
            continue
        if not header_seen:
            header_seen = True
            in_flag_table = table_cells(line)[0].lower() == "flag"
            continue
        if in_flag_table and not re.fullmatch(r"[\s|:-]+", line):
            yield number, table_cells(line)[0]


def table_flags(texts: Dict[str, str]) -> Tuple[Dict[str, str], List[str]]:
    """Every flag the flag tables name (flag -> where), and one line per row that names none."""
    flags, problems = {}, []
    for name, text in texts.items():
        for number, cell in flag_table_rows(text):
            found = [flag for span in CODE_SPAN.findall(cell) for flag in FLAG.findall(span[1])]
            if not found:
                problems.append(f"{name}:{number}: a flag-table row without a `--flag`: {cell}")
            for flag in found:
                flags.setdefault(flag, f"{name}:{number}")
    return flags, problems


def flag_problems(texts: Dict[str, str], declared: Set[str], plugin_own: Set[str]) -> List[str]:
    """Flags in tables that no parser declares, plugin flags in no table, rows without a flag."""
    flags, problems = table_flags(texts)
    problems += [f"{where}: {flag} is declared by none of the plugin's parsers"
                 for flag, where in sorted(flags.items()) if flag not in declared]
    problems += [f"{flag} is a plugin flag that no flag table lists" for flag in sorted(plugin_own - set(flags))]
    return problems


def parser_flags(add_args) -> Set[str]:
    parser = argparse.ArgumentParser(add_help=False)
    add_args(parser)
    return {option for action in parser._actions for option in action.option_strings if option.startswith("--")}


def dataclass_flags(config) -> Set[str]:
    """fairseq's rule (gen_parser_from_dataclass): field ``a_b`` is the flag ``--a-b``."""
    return {"--" + f.name.replace("_", "-") for f in dataclasses.fields(config) if not f.name.startswith("_")}


def plugin_flags() -> Tuple[Set[str], Set[str]]:
    """(every flag the plugin's parsers take, the flags the plugin adds to fairseq's)."""
    from fairseq.models.roberta import RobertaModel
    from fairseq.optim.fused_lamb import FairseqLAMB
    from fairseq.tasks.masked_lm import MaskedLMConfig
    from fairseq_tokendrop.criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig
    from fairseq_tokendrop.models.tokendrop_roberta import TokenDropRobertaModel
    from fairseq_tokendrop.optim.fairseq_lamb import LambConfig
    from fairseq_tokendrop.optim.mlperf_lr import MlperfPolynomialConfig
    from fairseq_tokendrop.tasks.masked_lm_tokendrop import MaskedLMTokenDropConfig

    model = parser_flags(TokenDropRobertaModel.add_args)
    criterion = dataclass_flags(MaskedLmTokenDropConfig)
    task = dataclass_flags(MaskedLMTokenDropConfig)
    # --optimizer lamb keeps fairseq's FairseqLAMB flags and adds its own; --lr is fairseq's in both
    optimizer = dataclass_flags(LambConfig)
    schedule = dataclass_flags(MlperfPolynomialConfig)
    own = (model - parser_flags(RobertaModel.add_args)) | criterion | (task - dataclass_flags(MaskedLMConfig))
    own |= (optimizer - parser_flags(FairseqLAMB.add_args) | schedule) - {"--lr"}
    return model | criterion | task | optimizer | schedule, own


def plugin_fields() -> Dict[str, Set[str]]:
    """The fields the plugin adds, per section of a fairseq config."""
    from fairseq.tasks.masked_lm import MaskedLMConfig
    from fairseq_tokendrop.criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig
    from fairseq_tokendrop.models.tokendrop_config import TokenDropConfig
    from fairseq_tokendrop.tasks.masked_lm_tokendrop import MaskedLMTokenDropConfig

    def names(config):
        return {f.name for f in dataclasses.fields(config) if not f.name.startswith("_")}
    return {"model": names(TokenDropConfig), "criterion": names(MaskedLmTokenDropConfig),
            "task": names(MaskedLMTokenDropConfig) - names(MaskedLMConfig)}


def hydra_config_problems(configs: Dict[str, dict], fields: Dict[str, Set[str]]) -> List[str]:
    """One line per plugin field a hydra config (name -> its parsed YAML) does not list."""
    return [f"{name}: {section}.{key} is not listed (plain overrides of it would need +)"
            for name, config in configs.items() for section, keys in fields.items()
            for key in sorted(keys - set((config or {}).get(section) or {}))]


def sections(text: str) -> List[List[Tuple[int, str]]]:
    """The prose lines of a markdown text, cut at its headings (each heading starts a section)."""
    cut: List[List[Tuple[int, str]]] = [[]]
    for number, line in prose_lines(text):
        if HEADING.match(line):
            cut.append([])
        cut[-1].append((number, line))
    return cut


def repeated_number_problems(readme: Path, repo: Path = REPO) -> List[str]:
    """One line per number in a README section that no docs page linked from that section holds."""
    problems = []
    for section in sections(readme.read_text()):
        pages = {t.partition("#")[0] for _, line in section for _, t in link_targets(line)
                 if t.partition("#")[0].endswith(".md") and not SCHEME.match(t)}
        held = {n for page in pages if (readme.parent / page).is_file()
                for n in NUMBER.findall((readme.parent / page).read_text())}
        for number, line in section:
            for value in NUMBER.findall(LINK.sub("", line)):
                if ("." in value or "e" in value or len(value.replace(",", "")) >= 3) and value not in held:
                    problems.append(f"{readme.relative_to(repo)}:{number}: {value} is on none of the pages this "
                                    f"section links ({', '.join(sorted(pages)) or 'none'})")
    return problems


def texts_of(files: Iterable[Path], repo: Path = REPO) -> Dict[str, str]:
    return {str(f.relative_to(repo)): f.read_text() for f in files}


# --- the docs as they are ---------------------------------------------------------------------------------------

def test_every_link_resolves():
    problems = [p for f in doc_files() for p in link_problems(f)]
    assert not problems, "\n".join(problems)


def test_readme_links_every_docs_page():
    linked = linked_files(REPO / "README.md")
    missing = [str(p.relative_to(REPO)) for p in doc_files()[1:] if p.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"


def test_named_commands_are_installed_and_every_command_is_documented():
    commands = installed_commands()
    problems = command_problems(texts_of(doc_files()), commands)
    assert not problems, "\n".join(problems)
    usage = (REPO / "docs" / "usage.md").read_text()
    assert not [c for c in sorted(commands) if c not in usage], "docs/usage.md misses an installed command"


def test_flag_tables_match_the_parsers():
    declared, own = plugin_flags()
    assert "--token-drop" in own and "--sctd-interval" in own and "--stop-at-mlm-acc" in own
    assert "--encoder-layers" not in own and "--mask-prob" not in own  # fairseq's, not the plugin's
    problems = flag_problems(texts_of(doc_files()), declared, own)
    assert not problems, "\n".join(problems)


def test_hydra_configs_list_every_plugin_field():
    import yaml

    configs = {str(p.relative_to(REPO)): yaml.safe_load(p.read_text())
               for p in sorted((REPO / "examples" / "config").rglob("*.yaml"))}
    fields = plugin_fields()
    assert len(configs) >= 3 and {"num_segment", "layer_norm_eps", "token_drop"} <= fields["model"]
    assert fields["criterion"] == {"sctd_interval", "sctd_full_weight", "sctd_kl_weight"}
    assert fields["task"] == {"stop_at_mlm_acc", "eval_interval_samples"}
    problems = hydra_config_problems(configs, fields)
    assert not problems, "\n".join(problems)


def test_every_number_readme_repeats_is_on_a_page_it_links():
    problems = repeated_number_problems(REPO / "README.md")
    assert not problems, "\n".join(problems)


# --- each checker can fail ----------------------------------------------------------------------------------------

def test_heading_anchors_follow_github():
    # comrak's header_ids test (the rule of GitHub's cmark-gfm) and github-slugger's README examples
    comrak = "# Hi.\n## Hi 1.\n### Hi.\n#### Hello.\n##### Hi.\n###### Hello.\n# Isn't it grand?\n"
    assert heading_anchors(comrak) == {"hi", "hi-1", "hi-2", "hello", "hi-3", "hello-1", "isnt-it-grand"}
    assert heading_anchor("Limits & Retries") == "limits--retries"
    assert heading_anchor("`a.b` c") == "ab-c"
    assert heading_anchor("foo_foo_bar") == "foo_foo_bar"
    assert heading_anchors("```\n# not a heading\n```\n## Hydra (`fairseq-hydra-train`)\n") == {
        "hydra-fairseq-hydra-train"}


def test_link_checker_names_each_broken_link(tmp_path):
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "page.md").write_text("# Page\n\n## Torch ≥ 2.6\n")
    (tmp_path / "elsewhere.md").write_text("# Elsewhere\n")
    readme = repo / "README.md"
    readme.write_text(
        "# Top\n"
        "[good](docs/page.md) [good anchor](docs/page.md#torch--26) [self](#top) [web](https://example.org/x)\n"
        "![missing picture](docs/nothing.png)\n"
        "[bad anchor](docs/page.md#torch-26)\n"
        "[outside](../elsewhere.md)\n"
        "`[in code](nowhere.md)`\n"
        "```\n[in a fence](nowhere.md)\n```\n")
    problems = link_problems(readme, repo=repo)
    assert [p.split(": ", 1)[0] for p in problems] == ["README.md:3", "README.md:4", "README.md:5"], problems
    assert "no such file" in problems[0] and "#torch-26" in problems[1] and "outside" in problems[2]


def test_command_checker_names_an_unknown_command():
    commands = {"fairseq-tokendrop-export"}
    text = "run `fairseq-tokendrop-export` or fairseq-tokendrop-NAME\n\nfairseq-tokendrop-exprot ckpt.pt\n"
    assert command_problems({"README.md": text}, commands) == [
        "README.md:3: fairseq-tokendrop-exprot is not in setup.py's COMMANDS"]


def test_flag_checker_names_unknown_and_missing_flags():
    text = ("| flag | meaning |\n| --- | --- |\n"
            "| `--token-drop P` | known |\n"
            "| `--token-dorp P` | a typo |\n"
            "| no flag here | |\n\n"
            "| option | meaning |\n| --- | --- |\n| `--not-a-flag-table` | ignored |\n")
    problems = flag_problems({"usage.md": text}, declared={"--token-drop", "--token-keep-k"},
                             plugin_own={"--token-drop", "--token-keep-k"})
    assert problems == ["usage.md:5: a flag-table row without a `--flag`: no flag here",
                        "usage.md:4: --token-dorp is declared by none of the plugin's parsers",
                        "--token-keep-k is a plugin flag that no flag table lists"]


def test_hydra_config_checker_names_each_missing_field():
    configs = {"a.yaml": {"model": {"token_drop": 0.5}, "criterion": {"sctd_interval": 0}},
               "b.yaml": {"model": {"token_drop": 0.5, "num_segment": 0}, "criterion": None, "task": {"x": 1}}}
    fields = {"model": {"token_drop", "num_segment"}, "criterion": {"sctd_interval"}, "task": {"stop_at_mlm_acc"}}
    assert hydra_config_problems(configs, fields) == [
        "a.yaml: model.num_segment is not listed (plain overrides of it would need +)",
        "a.yaml: task.stop_at_mlm_acc is not listed (plain overrides of it would need +)",
        "b.yaml: criterion.sctd_interval is not listed (plain overrides of it would need +)",
        "b.yaml: task.stop_at_mlm_acc is not listed (plain overrides of it would need +)"]


def test_number_checker_names_a_number_that_drifted_from_its_page(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "study.md").write_text("| mode | acc |\n| --- | --- |\n| baseline | 0.1486 ± 0.0017 |\n")
    (tmp_path / "docs" / "speed.md").write_text("ratio 0.739 at 3,000 updates, 6.65e12 MACs\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Top\n"
        "Accuracy 0.1486 ± 0.0018 ([study](docs/study.md)), 2 seeds, 12 s.\n"  # 0.0018 drifted; 2 and 12 too short
        "```\nbash run.sh 0.12345\n```\n"  # fenced code is not prose
        "## Speed\n"
        "0.739 of the step time, 3,000 updates, 6.65e12 MACs, 0.1486 ([speed](docs/speed.md))\n"  # 0.1486: not here
        "## Elsewhere\n"
        "438 tests\n")  # a section that links no page
    assert [p.split(" is on", 1)[0] for p in repeated_number_problems(readme, repo=tmp_path)] == [
        "README.md:2: 0.0018", "README.md:7: 0.1486", "README.md:9: 438"]
