"""Forms of the training pages, generated from what they edit: the training settings form has one input
per field of the library's config dataclasses (RewardFitConfig, PPOConfig) and of the task, sample
and tripwire DEFAULTS, with the comment the library wrote beside each field as its help text and the
default as its placeholder. Fields the form does not show (CLI-only paths, a product key holding an
object, task fields repeated in a section) travel in a JSON box beside it, so nothing is dropped."""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import json
import re
import textwrap
import tokenize
from dataclasses import dataclass
from typing import Any

from django import forms

from training.rlhf import config as library_config
from training.rlhf.config import PPOConfig, RewardFitConfig
from training.services import sampling, task, tripwires

# Not shown: paths and models the CLI or the worker sets, free-form notes, the retired dtype, and truncate_token
# (the task's truncate_text is the one truncation rule: task.section_truncation_errors).
HIDDEN = ("comparisons_path", "references_path", "output_dir", "metrics_path", "queries_path", "checkpoint_dir",
          "device", "policy_model", "reward", "model", "extra", "dtype", "truncate_token")
SECTION_TITLES = {"": "Base model and seed", "task": "Task (every run of a round: query and response shape)",
                  "reward": "Reward model fit (RewardFitConfig)", "ppo": "PPO (PPOConfig)",
                  "sample": "Sample runs (new comparisons for labelers)",
                  "tripwires": "Tripwires (automatic andon pulls)"}
OWN_HELP = {
    "base_model": 'What every run of a round starts from: "tiny", "tiny:<seed>", a Hugging Face id already in the '
                  "workers' cache, or a model folder the workers can read (they have no network).",
    "seed": "The round's seed: each run's, unless its section sets its own.",
    "publish_every": "Online mode: put the policy's samples in the labeling queue every N PPO updates (0: off). "
                     "Its sample settings are ppo.online_sample, in the JSON box.",
    "gpus": "GPUs for this run: above 1 the training worker starts it under torchrun, one rank a GPU (strategy "
            "picks ddp or fsdp); at most the GPUs a training worker has (TRAINING_WORKER_GPUS).",
}


@dataclass(frozen=True)
class SettingField:
    """One input of the settings form: `key` is "section.name" ("name" for the top-level keys)."""

    section: str
    name: str
    kind: str  # "bool", "int", "float", "str" or "choice"
    default: Any
    nullable: bool = False
    choices: tuple[str, ...] = ()
    help: str = ""

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name

    @property
    def form_name(self) -> str:
        return self.key.replace(".", "__")

    @property
    def placeholder(self) -> str:
        return "null" if self.default is None else json.dumps(self.default) if self.kind == "str" else str(
            self.default)


# ---------------------------------------------------------------- help text: the comments beside each field


@functools.cache
def field_comments(cls: type) -> dict[str, str]:
    """A dataclass's `# ...` comments per field: the comment lines right above a field and those on its
    own lines (one statement may span several), read from its source with tokenize."""
    tokens = list(tokenize.generate_tokens(io.StringIO(textwrap.dedent(inspect.getsource(cls))).readline))
    comments: dict[str, str] = {}
    pending: list[str] = []
    current, depth, start = None, 0, True
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.INDENT:
            depth += 1
        elif tok.type == tokenize.DEDENT:
            depth -= 1
        elif tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if current is not None:
                comments[current] = f"{comments[current]} {text}".strip()
            elif depth <= 1:
                pending.append(text)
        elif tok.type == tokenize.NL:
            if current is None and not tok.line.strip():
                pending = []  # a blank line ends a comment block
        elif tok.type == tokenize.NEWLINE:
            current, start = None, True
            pending = []
            continue
        elif (tok.type == tokenize.NAME and start and depth == 1 and i + 1 < len(tokens)
              and tokens[i + 1].string == ":"):
            current = tok.string
            comments[current] = " ".join(pending)
            pending = []
        if tok.type not in (tokenize.INDENT, tokenize.DEDENT, tokenize.NL, tokenize.COMMENT):
            start = False
    return {name: text for name, text in comments.items() if text}


@functools.cache
def dict_comments(module_name: str, variable: str) -> dict[str, str]:
    """The comments beside each key of a module-level dict literal (e.g. tripwires.DEFAULTS)."""
    import importlib

    source = inspect.getsource(importlib.import_module(module_name))
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    comments: dict[str, str] = {}
    inside, braces, key = False, 0, None
    for i, tok in enumerate(tokens):
        if not inside:
            inside = (tok.type == tokenize.NAME and tok.string == variable and tok.start[1] == 0
                      and i + 1 < len(tokens) and tokens[i + 1].string == "=")
            continue
        if tok.string in "{[(" and tok.type == tokenize.OP:
            braces += 1
        elif tok.string in "}])" and tok.type == tokenize.OP:
            braces -= 1
            if braces == 0:
                break
        elif tok.type == tokenize.STRING and braces == 1 and tokens[i + 1].string == ":":
            key = ast.literal_eval(tok.string)
        elif tok.type == tokenize.COMMENT and key is not None:
            comments[key] = f"{comments.get(key, '')} {tok.string.lstrip('#').strip()}".strip()
    return comments


# ---------------------------------------------------------------- the fields, generated


def _kind_of_annotation(annotation: str) -> tuple[str | None, bool]:
    parts = [part.strip() for part in str(annotation).split("|")]
    base = parts[0] if parts[0] in ("bool", "int", "float", "str") else None
    return base, "None" in parts


def _dataclass_fields(section: str, cls: type) -> list[SettingField]:
    comments = field_comments(cls)
    shown = []
    for f in dataclasses.fields(cls):
        kind, nullable = _kind_of_annotation(f.type)
        if kind is None or f.name in HIDDEN or f.name in task.TASK_DEFAULTS or f.default is dataclasses.MISSING:
            continue
        # A module-level tuple named after the field in the plural (PRECISIONS, LR_SCHEDULES, READOUTS,
        # RANKING_LOSSES, STRATEGIES…) lists its choices.
        name = f.name.upper()
        plural = (name[:-1] + "IES" if name.endswith("Y") else
                  name + ("ES" if name.endswith(("S", "SH", "CH", "X")) else "S"))
        choices = getattr(library_config, plural, None)
        if kind == "str" and isinstance(choices, tuple) and all(isinstance(c, str) for c in choices):
            kind = "choice"
        else:
            choices = ()
        shown.append(SettingField(section, f.name, kind, f.default, nullable, tuple(choices),
                                  comments.get(f.name, "")))
    return shown


def _dict_fields(section: str, defaults: dict, comments: dict[str, str], skip=()) -> list[SettingField]:
    shown = []
    for name, default in defaults.items():
        if name in skip:
            continue
        kind = next(k for t, k in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (type(None), "float"))
                    if isinstance(default, t))
        shown.append(SettingField(section, name, kind, default, default is None, (), comments.get(name, "")))
    return shown


@functools.cache
def settings_fields() -> tuple[tuple[str, tuple[SettingField, ...]], ...]:
    """(section, its fields) in the order the form shows them."""
    from django.conf import settings

    # A task field's help: the task's own comment, else PPO's (it samples and scores), else the reward fit's.
    task_comments = {**field_comments(RewardFitConfig), **field_comments(PPOConfig),
                     **dict_comments(task.__name__, "TASK_DEFAULTS")}
    general = (SettingField("", "base_model", "str", settings.TRAINING_DEFAULT_BASE_MODEL, help=OWN_HELP["base_model"]),
               SettingField("", "seed", "int", 0, help=OWN_HELP["seed"]))
    task_fields = tuple(_dict_fields("task", task.TASK_DEFAULTS, task_comments))
    ppo = (*_dataclass_fields("ppo", PPOConfig),
           SettingField("ppo", "publish_every", "int", 0, help=OWN_HELP["publish_every"]),
           SettingField("ppo", "gpus", "int", 1, help=OWN_HELP["gpus"]))
    reward = (*_dataclass_fields("reward", RewardFitConfig), SettingField("reward", "gpus", "int", 1,
                                                                          help=OWN_HELP["gpus"]))
    sample = _dict_fields("sample", sampling.DEFAULTS, dict_comments(sampling.__name__, "DEFAULTS"),
                          skip=task.TASK_DEFAULTS)
    trip = _dict_fields("tripwires", tripwires.DEFAULTS, dict_comments(tripwires.__name__, "DEFAULTS"))
    return (("", general), ("task", task_fields), ("reward", reward),
            ("ppo", ppo), ("sample", tuple(sample)), ("tripwires", tuple(trip)))


def fields_by_key() -> dict[str, SettingField]:
    return {f.key: f for _, fields in settings_fields() for f in fields}


def _get(settings: dict, f: SettingField, missing=None):
    holder = settings if not f.section else settings.get(f.section)
    return holder.get(f.name, missing) if isinstance(holder, dict) else missing


def split_shown(settings: dict) -> tuple[dict[str, Any], dict]:
    """({field key: value} the form shows, the rest of the settings as nested JSON)."""
    by_key = fields_by_key()
    shown, rest = {}, {}
    for top, value in (settings or {}).items():
        if isinstance(value, dict) and top not in ("base_model", "seed"):
            for name, inner in value.items():
                if f"{top}.{name}" in by_key:
                    shown[f"{top}.{name}"] = inner
                else:
                    rest.setdefault(top, {})[name] = inner
        elif top in by_key:
            shown[top] = value
        else:
            rest[top] = value
    return shown, rest


# ---------------------------------------------------------------- the Django forms


class _OpenChoiceField(forms.ChoiceField):
    """A select whose stored value may be outside its choices (an older or newer library's): the value is kept
    and posted back for the library's own check to name, never swapped silently for the first option."""

    def valid_value(self, value) -> bool:
        return True


def _django_field(f: SettingField, placeholder: str | None = None) -> forms.Field:
    attrs = {"placeholder": f.placeholder if placeholder is None else placeholder}
    if f.help:
        attrs["aria-describedby"] = f"id_{f.form_name}_helptext"
    common = {"required": False, "label": f.name, "help_text": f.help}
    if f.kind == "bool":
        return forms.BooleanField(**common, widget=forms.CheckboxInput(attrs={k: v for k, v in attrs.items()
                                                                              if k != "placeholder"}))
    if f.kind == "int":
        return forms.IntegerField(**common, widget=forms.NumberInput(attrs=attrs))
    if f.kind == "float":
        return forms.FloatField(**common, widget=forms.NumberInput(attrs={**attrs, "step": "any"}))
    if f.kind == "choice":
        return _OpenChoiceField(**common, choices=[(c, c) for c in f.choices])
    return forms.CharField(**common, strip=False, max_length=1000, widget=forms.TextInput(attrs=attrs))


def _json_object(raw: str, what: str) -> dict:
    raw = (raw or "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise forms.ValidationError(f"{what} is not valid JSON: {error.msg} (line {error.lineno}, column "
                                    f"{error.colno}).") from None
    if not isinstance(value, dict):
        raise forms.ValidationError(f"{what} must be a JSON object, e.g. {{\"ppo\": {{\"online_sample\": {{}}}}}}.")
    return value


class TrainingSettingsForm(forms.Form):
    """Every shown field (blank: the default), and `more`: the settings the form has no input for, as JSON."""

    more = forms.CharField(required=False, max_length=100_000, label="Other settings (JSON)",
                           widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false",
                                                        "data-ctrl-enter-submits": ""}))
    applied_preset = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for _, fields in settings_fields():
            for f in fields:
                self.fields[f.form_name] = _django_field(f)

    @classmethod
    def for_settings(cls, settings: dict, *, preset: str = "") -> TrainingSettingsForm:
        shown, rest = split_shown(settings)
        initial = {"more": json.dumps(rest, indent=2) if rest else "", "applied_preset": preset}
        for key, f in fields_by_key().items():
            value = shown.get(key, f.default if f.kind in ("bool", "choice") else None)
            initial[f.form_name] = "" if value is None else value
        form = cls(initial=initial)
        for f in fields_by_key().values():
            value = initial[f.form_name]
            if f.kind == "choice" and value not in f.choices:
                form.fields[f.form_name].choices = [*form.fields[f.form_name].choices, (value, value)]
        return form

    def clean_more(self) -> dict:
        more = _json_object(self.cleaned_data.get("more", ""), "Other settings")
        shown, _ = split_shown(more)
        if shown:
            raise forms.ValidationError(f"{', '.join(shown)} {'has' if len(shown) == 1 else 'have'} a field of "
                                        "its own in this form: set it there, not in the JSON.")
        return more

    def sections(self, sources: dict[str, str] | None = None) -> list:
        """(section, title, [(bound field, SettingField, preset source note)]) for the template."""
        sources = sources or {}
        return [(section, SECTION_TITLES[section], [(self[f.form_name], f, sources.get(f.key, "")) for f in fields])
                for section, fields in settings_fields()]

    def focus_first(self) -> None:
        """Autofocus the first field with an error, else the first field (keyboard-first)."""
        target = next((n for n in self._ordered() if self.errors.get(n)), None) if self.is_bound else None
        name = target or fields_by_key()["base_model"].form_name
        self.fields[name].widget.attrs["autofocus"] = True

    def _ordered(self) -> list[str]:
        return [f.form_name for _, fields in settings_fields() for f in fields] + ["more"]

    def settings(self) -> dict:
        """The settings this valid form holds: the JSON box, then each field that differs from its default."""
        settings = json.loads(json.dumps(self.cleaned_data["more"]))
        for f in fields_by_key().values():
            value = self.cleaned_data.get(f.form_name)
            if value is None or (value == "" and f.kind in ("str", "choice")):
                continue  # blank: the default
            if value == f.default and type(value) is type(f.default) or (
                    f.kind == "float" and f.default is not None and float(value) == float(f.default)):
                continue
            if f.section:
                settings.setdefault(f.section, {})[f.name] = value
            else:
                settings[f.name] = value
        return settings

    def show_errors(self, errors: dict[str, list[str]]) -> None:
        """Each "section.field" message beside its field; the rest (the JSON box's keys) beside the box. An
        unknown key that is a misspelling of a field of the form shows beside that field too."""
        by_key = fields_by_key()
        for key, messages in errors.items():
            for message in messages:
                if key in by_key:
                    self.add_error(by_key[key].form_name, message)
                    continue
                self.add_error("more" if key else None, f"{key}: {message}" if key else message)
                meant = re.search(r"did you mean '(\w+)'", message)
                section = key.rsplit(".", 1)[0] if "." in key else ""
                target = by_key.get(f"{section}.{meant.group(1)}" if section else meant.group(1)) if meant else None
                if target is not None:
                    self.add_error(target.form_name, f"{key}: {message}")


# Fields a round start offers to override (their values for this round only), beside a JSON box.
ROUND_OVERRIDE_KEYS = ("reward.lr", "ppo.total_episodes", "ppo.kl_coef")


class RoundStartForm(forms.Form):
    """One round's overrides: a few common fields and a JSON object of sections (validated by the service)."""

    overrides = forms.CharField(required=False, max_length=100_000, label="Overrides for this round (JSON)",
                                widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false",
                                                             "data-ctrl-enter-submits": "",
                                                             "placeholder": '{"sample": {"n_queries": 32}}'}))

    def __init__(self, *args, project_settings: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        by_key = fields_by_key()
        for key in ROUND_OVERRIDE_KEYS:
            f = by_key[key]
            current = _get(project_settings or {}, f, f.default)  # blank: the project's value
            self.fields[f.form_name] = _django_field(f, placeholder=str(current))
            self.fields[f.form_name].label = key

    def override_fields(self):
        return [self[fields_by_key()[key].form_name] for key in ROUND_OVERRIDE_KEYS]

    def clean_overrides(self) -> dict:
        return _json_object(self.cleaned_data.get("overrides", ""), "The overrides")

    def clean(self):
        cleaned = super().clean()
        overrides = cleaned.get("overrides")
        if overrides is None:
            return cleaned
        by_key = fields_by_key()
        for key in ROUND_OVERRIDE_KEYS:
            f = by_key[key]
            value = cleaned.get(f.form_name)
            if value is None:
                continue
            section = overrides.setdefault(f.section, {}) if isinstance(overrides.get(f.section, {}), dict) else None
            if section is None:
                continue  # the service names a section that is not an object
            if f.name in section and section[f.name] != value:
                self.add_error(f.form_name, f"{key} is also in the JSON box ({json.dumps(section[f.name])}): "
                                            "set it once.")
            section[f.name] = value
        return cleaned

    def show_errors(self, errors: dict[str, list[str]]) -> None:
        by_key = fields_by_key()
        for key, messages in errors.items():
            for message in messages:
                if key in ROUND_OVERRIDE_KEYS:
                    self.add_error(by_key[key].form_name, message)
                else:
                    self.add_error("overrides", f"{key}: {message}" if key else message)
