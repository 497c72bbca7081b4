"""Import the judge outputs teams already have: `judgecal import FORMAT PATH`.

Each importer turns a public judge-output format into judgecal's three files: items, human
labels (where the file holds them) and a replay file per judge. The judge's raw text is kept
and the file's own decision is not, so judgecal's parser decides; ``with_verdict`` keeps the
file's decision as the replay record's ``verdict`` for texts no parser reads (e.g. alpaca_eval's
logprob classifier answering ``m``/``M``).

Formats:

* ``fastchat`` — FastChat / MT-Bench ``model_judgment`` JSONL: pairwise (``g1_judgment`` with
  model_1 first, ``g2_judgment`` swapped), single-answer grading (``judgment`` + ``score``),
  and the human judgments (``winner`` by ``judge``, ``conversation_a``/``_b``) as labels. The
  prompt and answers come from the judge prompt (``user_prompt``) or the conversations.
* ``arena-hard`` — Arena-Hard judgment JSONL: ``games`` judged baseline-first then swapped
  (v0.1: ``user_prompt`` and text ``judgment``; v2: ``prompt`` messages and
  ``judgment.answer``).
* ``alpaca-eval`` — alpaca_eval annotations (a JSON list, or JSONL): ``instruction``,
  ``output_1``/``output_2``, ``preference`` (1 = output_1, 2 = output_2, 1.5 or 0 = tie),
  ``raw_completion``; with ``labels=True`` the preferences are human labels instead.
* ``inspect`` — an Inspect AI eval log (``.eval`` or ``.json``) read with Inspect's own
  reader: each sample's input and output, and the model-graded scorer's explanation (the
  grader's completion) per epoch.
* ``generic`` — one row per judgment (CSV, JSONL or a JSON list) with a column mapping.

Pairwise items are oriented canonically (A is the alphabetically first model of the pair), so
judge files and human files about the same pair share one item and each judgment is recorded
in the order it was presented.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rubrics.inputs import InputError, csv_records, json_value, jsonl_values, read_text


class ImportFileError(InputError):
    """An input file that cannot be imported (names the file, line and problem)."""


@dataclass
class Imported:
    """What an importer read: rows of judgecal's items, labels and replay files."""

    mode: str
    """``pairwise`` or ``pointwise``."""
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: list[dict[str, Any]] = field(default_factory=list)
    replay: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """judge name → replay records."""
    parser: str | None = None
    """The ``--parser`` that reads these judges' raw text, where one does."""
    notes: list[str] = field(default_factory=list)

    def add_item(self, item: dict[str, Any], where: str) -> str:
        """Add ``item``, or check it equals the item already read under its id."""
        known = self.items.get(item["id"])
        if known is None:
            self.items[item["id"]] = item
        elif {k: v for k, v in known.items() if k != "meta"} != {
            k: v for k, v in item.items() if k != "meta"
        }:
            raise ImportFileError(f"{where}: item {item['id']!r} was read before with other text")
        return str(item["id"])

    def add_record(self, judge: str, record: dict[str, Any], where: str) -> None:
        records = self.replay.setdefault(_safe_name(judge), [])
        key = (record["item_id"], record.get("order", ""), record.get("sample", 0))
        for seen in records:
            if (seen["item_id"], seen.get("order", ""), seen.get("sample", 0)) == key:
                # A re-judged record (e.g. the same match in two files) is one more sample.
                record = {**record, "sample": record.get("sample", 0) + 1}
                key = (key[0], key[1], record["sample"])
        records.append(record)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "judge"


def _records(path: Path) -> list[tuple[str, Any]]:
    """(where, record) for a JSONL file, a JSON list, or a JSON object per line."""
    text = read_text(path)
    if path.suffix == ".json" or text.lstrip().startswith("["):
        value = json_value(text, str(path))
        if not isinstance(value, list):
            raise ImportFileError(f"{path}: expected a JSON list of records")
        return [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    return list(jsonl_values(path))


def _nonempty_records(path: Path) -> list[tuple[str, Any]]:
    rows = _records(path)
    if not rows:
        raise ImportFileError(f"{path}: no records")
    return rows


def _need(row: Any, keys: Iterable[str], where: str) -> None:
    if not isinstance(row, dict):
        raise ImportFileError(f"{where}: expected a JSON object")
    missing = [k for k in keys if k not in row]
    if missing:
        raise ImportFileError(f"{where}: missing {missing}")


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str):
        raise ImportFileError(f"{where}: {name} must be text, got {type(value).__name__}")
    return value


def _pair(model_1: str, model_2: str) -> tuple[str, str, bool]:
    """The canonical (A, B) of two models and whether model_1 is B."""
    a, b = sorted((model_1, model_2))
    return a, b, model_1 != a


def _between(text: str, start: str, end: str) -> str | None:
    i = text.find(start)
    if i < 0:
        return None
    i += len(start)
    j = text.find(end, i)
    return None if j < 0 else text[i:j].strip("\n")


# FastChat's judge prompts (single-v1, pair-v2 and their -math / -multi-turn variants).
_QUESTION = re.compile(r"\[(?:User )?Question\]\n(.*?)\n\n\[The Start of", re.S)


def _fastchat_prompt(user_prompt: str) -> tuple[str, list[str]] | None:
    """(question, answers in presented order) from a FastChat judge prompt."""
    question = _QUESTION.search(user_prompt)
    if question:
        answers = [
            _between(
                user_prompt,
                f"[The Start of Assistant {x}'s Answer]\n",
                f"\n[The End of Assistant {x}'s Answer]",
            )
            for x in ("A", "B")
        ]
        if answers[0] is None:
            single = _between(
                user_prompt,
                "[The Start of Assistant's Answer]\n",
                "\n[The End of Assistant's Answer]",
            )
            return (question.group(1), [single]) if single is not None else None
        if answers[1] is None:
            return None
        return question.group(1), [a for a in answers if a is not None]
    # Multi-turn: each conversation is parsed back into its turns.
    convs = [
        _between(
            user_prompt,
            f"<|The Start of Assistant {x}'s Conversation with User|>",
            f"<|The End of Assistant {x}'s Conversation with User|>",
        )
        for x in ("A", "B")
    ]
    if convs[0] is None:
        convs = [
            _between(
                user_prompt,
                "<|The Start of Assistant's Conversation with User|>",
                "<|The End of Assistant's Conversation with User|>",
            )
        ]
    elif convs[1] is None:
        return None
    if convs[0] is None:
        return None
    turns = [_TURN.findall(c) for c in convs if c is not None]
    parsed = [
        _conversation(
            [
                {"role": "user" if who == "User" else "assistant", "content": text.strip("\n")}
                for who, text in t
            ],
            "judge prompt",
        )
        for t in turns
        if t
    ]
    if len(parsed) != len(turns) or len({p for p, _ in parsed}) != 1:
        return None
    return parsed[0][0], [answer for _, answer in parsed]


_TURN = re.compile(r"### (User|Assistant(?: [AB])?):\n(.*?)(?=\n\n### (?:User|Assistant)|\Z)", re.S)


def _conversation(messages: Any, where: str) -> tuple[str, str]:
    """(the user turns, the assistant turns) of a FastChat conversation."""
    if not isinstance(messages, list) or not messages:
        raise ImportFileError(f"{where}: a conversation must be a non-empty list of messages")
    users: list[str] = []
    assistants: list[str] = []
    for m in messages:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ImportFileError(f"{where}: each message needs a role and content")
        (users if m["role"] == "user" else assistants).append(_text(m["content"], where, "content"))
    if len(users) > 1:
        return (
            "\n\n".join(f"### User (turn {i + 1}):\n{u}" for i, u in enumerate(users)),
            "\n\n".join(f"### Assistant (turn {i + 1}):\n{a}" for i, a in enumerate(assistants)),
        )
    return users[0] if users else "", "\n\n".join(assistants)


_FASTCHAT_HUMAN = {"model_a": "A", "model_b": "B", "tie": "tie", "tie (bothbad)": "tie"}


def import_fastchat(path: str | Path, *, with_verdict: bool = False) -> Imported:
    path = Path(path)
    rows = _nonempty_records(path)
    first = rows[0][1]
    if isinstance(first, dict) and "g1_judgment" in first:
        return _fastchat_pairs(rows, with_verdict)
    if isinstance(first, dict) and "winner" in first and "conversation_a" in first:
        return _fastchat_human(rows)
    if isinstance(first, dict) and "judgment" in first and "model" in first:
        return _fastchat_single(rows, with_verdict)
    raise ImportFileError(
        f"{path}: not a FastChat judgment file (expected g1_judgment/g2_judgment, judgment "
        "with model, or winner with conversation_a)"
    )


def _fastchat_id(row: dict[str, Any], a: str, b: str | None = None) -> str:
    qid = row.get("question_id", row.get("id"))
    models = a if b is None else f"{a}-vs-{b}"
    return f"mtbench-{qid}-t{row.get('turn', 1)}-{models}"


def _add_fastchat_pair(
    out: Imported,
    row: dict[str, Any],
    prompt: str,
    answers: dict[str, str],
    turn: Any,
    where: str,
) -> str:
    """One FastChat pair as an item, oriented canonically (A: the first model by name)."""
    a, b, _ = _pair(*answers)
    return out.add_item(
        {
            "id": _fastchat_id(row, a, b),
            "prompt": prompt,
            "response_a": answers[a],
            "response_b": answers[b],
            "meta": {
                "model_a": a,
                "model_b": b,
                "question_id": row.get("question_id"),
                "turn": turn,
            },
        },
        where,
    )


def _judge_name(row: dict[str, Any], default: str) -> str:
    judge = row.get("judge", default)
    if isinstance(judge, list):
        return "-".join(str(j) for j in judge)
    return str(judge)


def _fastchat_pairs(rows: list[tuple[str, Any]], with_verdict: bool) -> Imported:
    out = Imported(mode="pairwise", parser="mtbench")
    winners = {"model_1": "1", "model_2": "2", "tie": "tie"}
    for where, row in rows:
        _need(row, ("model_1", "model_2", "g1_judgment", "g2_judgment"), where)
        m1, m2 = str(row["model_1"]), str(row["model_2"])
        a, _, _ = _pair(m1, m2)
        parsed = _fastchat_prompt(_text(row.get("g1_user_prompt", ""), where, "g1_user_prompt"))
        if parsed is None or len(parsed[1]) != 2:
            raise ImportFileError(
                f"{where}: cannot read the question and both answers from g1_user_prompt "
                "(FastChat's pair prompt markers are missing)"
            )
        question, (first, second) = parsed
        item_id = _add_fastchat_pair(
            out, row, question, {m1: first, m2: second}, row.get("turn", 1), where
        )
        judge = _judge_name(row, "fastchat-judge")
        for game, presented_first in (("g1", m1), ("g2", m2)):
            order = "ab" if presented_first == a else "ba"
            record: dict[str, Any] = {
                "item_id": item_id,
                "order": order,
                "text": _text(row[f"{game}_judgment"], where, f"{game}_judgment"),
            }
            if with_verdict:
                won = winners.get(str(row.get(f"{game}_winner")))
                if won is not None:
                    # g*_winner names models; the replay verdict is in presented order
                    winner_model = {"1": m1, "2": m2}.get(won)
                    record["verdict"] = (
                        "tie"
                        if winner_model is None
                        else ("A" if winner_model == presented_first else "B")
                    )
            out.add_record(judge, record, where)
    return out


def _fastchat_single(rows: list[tuple[str, Any]], with_verdict: bool) -> Imported:
    out = Imported(mode="pointwise", parser="score")
    for where, row in rows:
        _need(row, ("model", "judgment", "user_prompt"), where)
        parsed = _fastchat_prompt(_text(row["user_prompt"], where, "user_prompt"))
        if parsed is None or len(parsed[1]) != 1:
            raise ImportFileError(
                f"{where}: cannot read the question and answer from user_prompt "
                "(FastChat's single-answer prompt markers are missing)"
            )
        model = str(row["model"])
        item_id = out.add_item(
            {
                "id": _fastchat_id(row, model),
                "prompt": parsed[0],
                "response": parsed[1][0],
                "meta": {
                    "model": model,
                    "question_id": row.get("question_id"),
                    "turn": row.get("turn", 1),
                },
            },
            where,
        )
        record: dict[str, Any] = {
            "item_id": item_id,
            "text": _text(row["judgment"], where, "judgment"),
        }
        if with_verdict and isinstance(row.get("score"), (int, float)) and row["score"] >= 0:
            record["verdict"] = row["score"]  # FastChat writes -1 where its parser failed
        out.add_record(_judge_name(row, "fastchat-judge"), record, where)
    return out


def _fastchat_human(rows: list[tuple[str, Any]]) -> Imported:
    out = Imported(mode="pairwise")
    seen: set[tuple[str, str]] = set()
    for where, row in rows:
        _need(
            row,
            ("model_a", "model_b", "winner", "judge", "conversation_a", "conversation_b"),
            where,
        )
        ma, mb = str(row["model_a"]), str(row["model_b"])
        flipped = _pair(ma, mb)[2]
        turn = int(row.get("turn", 1))
        # Turn 1 is judged on the first exchange only; turn 2 on the whole conversation.
        keep = 2 if turn == 1 else None
        if not isinstance(row["conversation_a"], list) or not isinstance(
            row["conversation_b"], list
        ):
            raise ImportFileError(f"{where}: conversations must be lists of messages")
        prompt_a, answer_a = _conversation(row["conversation_a"][:keep], where)
        prompt_b, answer_b = _conversation(row["conversation_b"][:keep], where)
        if prompt_a != prompt_b:
            raise ImportFileError(f"{where}: the two conversations answer different questions")
        item_id = _add_fastchat_pair(out, row, prompt_a, {ma: answer_a, mb: answer_b}, turn, where)
        winner = _FASTCHAT_HUMAN.get(str(row["winner"]))
        if winner is None:
            raise ImportFileError(
                f"{where}: winner {row['winner']!r} is not model_a, model_b or tie"
            )
        if flipped and winner in ("A", "B"):
            winner = "B" if winner == "A" else "A"
        annotator = str(row["judge"])
        if (item_id, annotator) in seen:
            out.notes.append(
                f"{where}: {annotator} judged {item_id} again; the later label is kept"
            )
            out.labels = [
                label
                for label in out.labels
                if (label["item_id"], label["annotator"]) != (item_id, annotator)
            ]
        seen.add((item_id, annotator))
        out.labels.append({"item_id": item_id, "annotator": annotator, "value": winner})
    return out


_ARENA_SCORE = re.compile(r"^\s*([AB])\s*(>>|>|=|<<|<)\s*([AB])\s*$")


def _arena_winner(score: Any) -> str | None:
    """An Arena-Hard ``score`` (``A>>B`` … ``B>>A``) as a presented-order winner."""
    m = _ARENA_SCORE.match(str(score)) if score is not None else None
    if not m or m.group(1) == m.group(3):
        return None
    if m.group(2) == "=":
        return "tie"
    left_wins = m.group(2).startswith(">")
    return m.group(1) if left_wins else m.group(3)


def import_arena_hard(
    path: str | Path, *, baseline: str | None = None, with_verdict: bool = False
) -> Imported:
    path = Path(path)
    out = Imported(mode="pairwise", parser="arena")
    rows = _nonempty_records(path)
    for where, row in rows:
        _need(row, ("model", "games"), where)
        model = str(row["model"])
        base = str(row.get("baseline") or baseline or "")
        if not base:
            raise ImportFileError(
                f"{where}: no baseline model named (v0.1 files do not record it: pass --baseline, "
                "e.g. gpt-4-0314)"
            )
        games = row["games"]
        if not isinstance(games, list) or not games:
            raise ImportFileError(f"{where}: games must be a non-empty list")
        question_id = row.get("question_id", row.get("uid"))
        if question_id is None:
            raise ImportFileError(f"{where}: missing ['question_id'] (or 'uid')")
        a, b, _ = _pair(base, model)
        judge = _judge_name(row, "arena-hard-judge")
        item_id: str | None = None
        for number, game in enumerate(games):
            here = f"{where} game {number + 1}"
            if game is None:
                out.notes.append(f"{here}: no judgment recorded")
                continue
            if not isinstance(game, dict) or "judgment" not in game:
                raise ImportFileError(f"{here}: missing ['judgment']")
            judgment = game["judgment"]
            if isinstance(judgment, dict):
                judgment = judgment.get("answer")
            text = _text(judgment, here, "judgment")
            # Game 1 shows the baseline as A; game 2 swaps them.
            presented_first = base if number % 2 == 0 else model
            if item_id is None:
                prompt_text = game.get("user_prompt")
                if prompt_text is None and isinstance(game.get("prompt"), list):
                    prompt_text = "\n".join(
                        str(m.get("content", "")) for m in game["prompt"] if m.get("role") == "user"
                    )
                question = _between(
                    str(prompt_text or ""),
                    "<|User Prompt|>\n",
                    "\n\n<|The Start of Assistant A's Answer|>",
                )
                first = _between(
                    str(prompt_text or ""),
                    "<|The Start of Assistant A's Answer|>\n",
                    "\n<|The End of Assistant A's Answer|>",
                )
                second = _between(
                    str(prompt_text or ""),
                    "<|The Start of Assistant B's Answer|>\n",
                    "\n<|The End of Assistant B's Answer|>",
                )
                if question is None or first is None or second is None:
                    raise ImportFileError(
                        f"{here}: cannot read the question and both answers from the judge "
                        "prompt (Arena-Hard's <|User Prompt|> markers are missing)"
                    )
                second_model = model if presented_first == base else base
                answers = {presented_first: first, second_model: second}
                item_id = out.add_item(
                    {
                        "id": f"arena-{question_id}-{a}-vs-{b}",
                        "prompt": question,
                        "response_a": answers[a],
                        "response_b": answers[b],
                        "meta": {
                            "model_a": a,
                            "model_b": b,
                            "question_id": question_id,
                            **({"category": row["category"]} if "category" in row else {}),
                        },
                    },
                    here,
                )
            record: dict[str, Any] = {
                "item_id": item_id,
                "order": "ab" if presented_first == a else "ba",
                "sample": number // 2,
                "text": text,
            }
            if with_verdict and (winner := _arena_winner(game.get("score"))) is not None:
                record["verdict"] = winner
            out.add_record(judge, record, here)
    return out


def _alpaca_winner(preference: Any, where: str) -> str:
    try:
        p = float(preference)
    except (TypeError, ValueError):
        raise ImportFileError(f"{where}: preference {preference!r} is not a number") from None
    if p == 0 or p == 1.5:
        return "tie"
    if not 1 <= p <= 2:
        raise ImportFileError(f"{where}: preference {p} is outside 1..2 (0 for a draw)")
    return "A" if p < 1.5 else "B"


def _raw_completion(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return str(value["text"])
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    raise ImportFileError(f"{where}: raw_completion is missing or not text")


def import_alpaca_eval(
    path: str | Path, *, labels: bool = False, with_verdict: bool = False
) -> Imported:
    path = Path(path)
    out = Imported(mode="pairwise")
    rows = _nonempty_records(path)
    for where, row in rows:
        _need(row, ("instruction", "output_1", "output_2"), where)
        g1 = str(row.get("generator_1", "output_1"))
        g2 = str(row.get("generator_2", "output_2"))
        a, b, flipped = _pair(g1, g2) if g1 != g2 else (g1, g2, False)
        outputs = {
            True: (row["output_2"], row["output_1"]),
            False: (row["output_1"], row["output_2"]),
        }[flipped]
        prompt = _text(row["instruction"], where, "instruction")
        if row.get("input"):
            prompt += "\n\n" + _text(row["input"], where, "input")
        item_id = out.add_item(
            {
                "id": f"alpaca-{_digest(prompt)}-{a}-vs-{b}",
                "prompt": prompt,
                "response_a": _text(outputs[0], where, "output"),
                "response_b": _text(outputs[1], where, "output"),
                "meta": {
                    "model_a": a,
                    "model_b": b,
                    **({"dataset": row["dataset"]} if "dataset" in row else {}),
                },
            },
            where,
        )
        if labels:
            _need(row, ("preference",), where)
            winner = _alpaca_winner(row["preference"], where)
            if flipped and winner in ("A", "B"):
                winner = "B" if winner == "A" else "A"
            annotator = str(row.get("annotator", row.get("annotator_index", "annotator")))
            out.labels.append({"item_id": item_id, "annotator": annotator, "value": winner})
            continue
        if "raw_completion" not in row:
            out.notes.append(f"{where}: no raw_completion; the judgment is left out")
            continue
        record: dict[str, Any] = {
            "item_id": item_id,
            "order": "ba" if flipped else "ab",  # the judge saw output_1 first
            "text": _raw_completion(row["raw_completion"], where),
        }
        if with_verdict and row.get("preference") is not None:
            record["verdict"] = _alpaca_winner(row["preference"], where)
        out.add_record(str(row.get("annotator", "alpaca-eval-judge")), record, where)
    return out


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]


def import_inspect(
    path: str | Path, *, scorer: str | None = None, with_verdict: bool = False
) -> Imported:
    """An Inspect AI eval log through Inspect's own reader (``inspect_ai.log``)."""
    try:
        from inspect_ai.log import read_eval_log

        from judgecal.adapters.inspect import openai_messages
    except ImportError:  # pragma: no cover - the inspect extra
        raise ImportFileError(
            "importing Inspect logs needs inspect-ai: pip install 'judgecal[inspect]'"
        ) from None
    path = Path(path)
    try:
        log = read_eval_log(str(path))
    except Exception as exc:  # noqa: BLE001 - Inspect raises many kinds on a bad file
        raise ImportFileError(f"{path}: not a readable Inspect eval log ({exc})") from None
    out = Imported(mode="pointwise")
    judge = _safe_name(f"inspect-{log.eval.model}")
    for sample in log.samples or []:
        where = f"{path} sample {sample.id} epoch {sample.epoch}"
        scores = sample.scores or {}
        name = scorer or next(iter(scores), None)
        if name is None:
            out.notes.append(f"{where}: no score")
            continue
        if name not in scores:
            raise ImportFileError(f"{where}: no scorer {name!r} (scorers: {sorted(scores)})")
        score = scores[name]
        inputs = sample.input
        if isinstance(inputs, str):
            prompt = inputs
        else:
            prompt = "\n\n".join(
                m.text for m in inputs if getattr(m, "role", "") in ("user", "system")
            )
        response = sample.output.completion if sample.output else ""
        history = openai_messages(sample.messages or [])
        if history and history[-1]["role"] == "assistant":
            history = history[:-1]  # the judged response
        item_id = out.add_item(
            {
                "id": f"inspect-{sample.id}",
                "prompt": prompt,
                "response": response or "",
                # the whole transcript when there is more than the prompt (system turns,
                # tool calls and their results)
                **({"messages": history} if len(history) > 1 else {}),
                "meta": {
                    "target": sample.target
                    if isinstance(sample.target, str)
                    else list(sample.target),
                    "task": log.eval.task,
                },
            },
            where,
        )
        if not score.explanation:
            out.notes.append(f"{where}: scorer {name!r} recorded no grader text")
            continue
        record: dict[str, Any] = {
            "item_id": item_id,
            "sample": int(sample.epoch) - 1,
            "text": score.explanation,
        }
        if with_verdict:
            from inspect_ai.scorer import value_to_float

            record["verdict"] = float(value_to_float()(score.value))
        out.add_record(judge, record, where)
    if not out.items:
        raise ImportFileError(f"{path}: the log holds no scored samples")
    out.notes.append(
        "Inspect's model-graded scorers end with 'GRADE: C|P|I': run with "
        "--verdict-pattern 'GRADE: (?P<score>...)' on a numeric rubric, or import with "
        "--with-verdict to keep Inspect's value (C=1, P=0.5, I=0)"
    )
    return out


GENERIC_FIELDS = (
    "item_id",
    "prompt",
    "response",
    "response_a",
    "response_b",
    "judgment",
    "judge",
    "order",
    "sample",
    "label",
    "annotator",
    "criterion",
)


def import_generic(path: str | Path, mapping: Mapping[str, str]) -> Imported:
    """One row per judgment or label; ``mapping`` names the column for each judgecal field
    (fields default to columns of the same name)."""
    path = Path(path)
    unknown = sorted(set(mapping) - set(GENERIC_FIELDS))
    if unknown:
        raise ImportFileError(f"unknown fields {unknown}; fields are {list(GENERIC_FIELDS)}")
    if path.suffix == ".csv":
        header, numbered = csv_records(path)
        rows: list[tuple[str, Any]] = [(f"{path}:{n}", r) for n, r in numbered]
    else:
        rows = _records(path)
        header = sorted({k for _, r in rows if isinstance(r, dict) for k in r})
    column = {f: mapping.get(f, f) for f in GENERIC_FIELDS}
    missing = [c for f, c in mapping.items() if c not in header]
    if missing:
        raise ImportFileError(f"{path}: no columns {missing} (columns: {header})")
    pairwise = column["response_a"] in header and column["response_b"] in header
    if not pairwise and column["response"] not in header:
        raise ImportFileError(f"{path}: needs a response column, or response_a and response_b")
    out = Imported(mode="pairwise" if pairwise else "pointwise")

    def get(row: dict[str, Any], name: str) -> Any:
        value = row.get(column[name])
        return None if value in (None, "") else value

    for where, row in rows:
        if not isinstance(row, dict):
            raise ImportFileError(f"{where}: expected an object")
        item_id = get(row, "item_id")
        if item_id is None:
            raise ImportFileError(f"{where}: no {column['item_id']!r}")
        item: dict[str, Any] = {"id": str(item_id), "prompt": str(get(row, "prompt") or "")}
        if pairwise:
            item["response_a"], item["response_b"] = (
                str(get(row, "response_a") or ""),
                str(get(row, "response_b") or ""),
            )
        else:
            item["response"] = str(get(row, "response") or "")
        out.add_item(item, where)
        judgment, label = get(row, "judgment"), get(row, "label")
        if judgment is None and label is None:
            raise ImportFileError(f"{where}: neither a judgment nor a label")
        if judgment is not None:
            record: dict[str, Any] = {"item_id": str(item_id), "text": str(judgment)}
            if pairwise:
                order = str(get(row, "order") or "ab").lower()
                if order not in ("ab", "ba"):
                    raise ImportFileError(f"{where}: order must be ab or ba, got {order!r}")
                record["order"] = order
            sample = get(row, "sample")
            if sample is not None:
                try:
                    record["sample"] = int(sample)
                except ValueError:
                    raise ImportFileError(
                        f"{where}: sample {sample!r} is not a whole number"
                    ) from None
            out.add_record(str(get(row, "judge") or "judge"), record, where)
        if label is not None:
            row_label: dict[str, Any] = {
                "item_id": str(item_id),
                "annotator": str(get(row, "annotator") or "annotator"),
                "value": label,
            }
            if get(row, "criterion") is not None:
                row_label["criterion"] = str(get(row, "criterion"))
            out.labels.append(row_label)
    return out


IMPORTERS: dict[str, Callable[..., Imported]] = {
    "fastchat": import_fastchat,
    "arena-hard": import_arena_hard,
    "alpaca-eval": import_alpaca_eval,
    "inspect": import_inspect,
    "generic": import_generic,
}


def write_imported(imported: Imported, out_dir: str | Path) -> dict[str, Any]:
    """Write the items, labels and replay files into ``out_dir``, each checked by the loader
    that will read it; nothing is written unless every file loads."""
    from judge.backends.replay import load_replay
    from judge.items import load_items

    out_dir = Path(out_dir)
    staged = Path(
        tempfile.mkdtemp(
            prefix=".judgecal-import-", dir=out_dir.parent if out_dir.parent.exists() else None
        )
    )
    try:
        files: dict[str, Any] = {}
        items_path = staged / "items.jsonl"
        _write_jsonl(items_path, imported.items.values())
        load_items(items_path)
        files["items"] = "items.jsonl"
        if imported.labels:
            from human_labels import load_labels

            _write_jsonl(staged / "labels.jsonl", imported.labels)
            load_labels(staged / "labels.jsonl", item_ids=set(imported.items))
            files["labels"] = "labels.jsonl"
        files["replay"] = {}
        for judge, records in imported.replay.items():
            name = f"{judge}.replay.jsonl"
            _write_jsonl(staged / name, records)
            load_replay(staged / name)
            files["replay"][judge] = name
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in [
            files["items"],
            *([files["labels"]] if "labels" in files else []),
            *files["replay"].values(),
        ]:
            shutil.move(str(staged / name), str(out_dir / name))
    except Exception as exc:
        if isinstance(exc, ImportFileError):
            raise
        raise ImportFileError(f"the imported files do not load: {exc}") from exc
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return files


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
