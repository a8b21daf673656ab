"""The four problem families of the toy strategy world, and their two ways of being solved.

Each family is the toy analog of one math benchmark (toy-world.md, point 1). For every
instance a family knows how to write:

- the problem text and its exact answer;
- the **step-by-step execution** of each strategy: one small operation per line (a
  two-digit number plus or minus a digit, a one-digit product, a two-digit digit sum), which
  a small student *can* learn to execute reliably (point 3);
- the **strong solver's** response for a given strategy key: correct, and written like a
  long reasoning trace that jumps over some steps (toy-world.md, point 2). It spells out the
  execution's lines, each one skipped with probability `skip_rate` (a draw fixed per problem
  and strategy, the same draws for every rate, so a lower rate only adds lines back), then
  concludes with a one-sentence summary that names the approach and jumps straight to the
  answer (the trace the offline extractor recognises). At `skip_rate` 1 only the summary is
  left, the compressed response of the worlds before `toy-students-v5`; at 0 every step is
  spelled out. A skipped line leaves the next one starting from a number the reader has to
  compute in its head: two operations in one go, which a small student imitating the
  response gets wrong more often.

Instances are plain JSON-able dicts (stored in `Problem.meta["params"]`), so every text can be
rebuilt from a stored problem. Departure from real data: the strong responses are written from
templates, so each strategy leaves a recognisable trace in its strong response; the offline
extractor (`toy.extractor`) relies on that trace where a real extractor LLM reads the text.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from typing import ClassVar

BOX = "\\boxed{{{}}}"


def _boxed(answer: int | str) -> str:
    return BOX.format(answer)


def _lines(lines: list[str], answer: int | str) -> str:
    return "\n".join(lines + [_boxed(answer)])


def _signed(numbers: list[int]) -> str:
    return "".join(f"{n:+d}" for n in numbers)


def skip_draws(text: str, key: str, n: int) -> list[float]:
    """`n` uniform draws in [0, 1), one per execution line of the strong response to problem `text`
    in the style of strategy `key`; line i is skipped when its draw is below the skip rate. Seeded by
    `(text, key)` alone (not by the world seed or a stream), so a problem's strong response is the
    same wherever it is written (world splits, pretraining, tokenizer corpus)."""
    rng = random.Random(int.from_bytes(hashlib.sha256(repr(("strong-skips", text, key)).encode()).digest()[:8], "little"))
    return [rng.random() for _ in range(n)]


class Family(ABC):
    """A problem family: its name, benchmark analog and strategy keys, and its texts."""

    name: str = ""
    analog: str = ""
    strategy_keys: tuple[str, ...] = ()

    @abstractmethod
    def sample(self, rng: random.Random, ood: bool) -> dict:
        """A random instance (JSON-able parameters) of the train/test or the OOD distribution."""

    @abstractmethod
    def text(self, inst: dict) -> str:
        """The problem statement."""

    @abstractmethod
    def answer(self, inst: dict) -> str:
        """The exact answer."""

    @abstractmethod
    def summary(self, inst: dict, key: str) -> str:
        """The strong solver's one-sentence conclusion in the style of strategy `key`: the approach
        in a few words and a jump to the answer (e.g. `Column by column, 487*6 = 2922.`)."""

    @abstractmethod
    def steps(self, inst: dict, key: str) -> list[str]:
        """The lines of the step-by-step execution of strategy `key`, one small operation each."""

    def execute(self, inst: dict, key: str) -> str:
        """The step-by-step execution of strategy `key`, ending in `\\boxed{answer}`."""
        return _lines(self.steps(inst, key), self.answer(inst))

    def strong(self, inst: dict, key: str, skip_rate: float) -> str:
        """The strong solver's response in the style of strategy `key`: the execution's lines, each
        skipped with probability `skip_rate` (`skip_draws`), then `summary`, then the boxed answer."""
        lines = self.steps(inst, key)
        kept = [line for line, u in zip(lines, skip_draws(self.text(inst), key, len(lines))) if u >= skip_rate]
        return _lines(kept + [self.summary(inst, key)], self.answer(inst))


class SumFamily(Family):
    """Running totals: `Evaluate 23+7-4+9+5.` (analog of GSM8K's chained word arithmetic).

    OOD: 6-8 terms instead of 2-4, and a start up to 99 instead of 59.
    """

    name, analog = "sum", "gsm8k"
    strategy_keys = ("running_total", "gains_then_losses")

    def sample(self, rng, ood):
        n_ops = rng.randint(6, 8) if ood else rng.randint(2, 4)
        start = rng.randint(10, 99 if ood else 59)
        while True:
            ops = [rng.choice((1, -1)) * m for m in rng.sample(range(1, 10), n_ops)]  # distinct digits
            totals = [start + sum(ops[: i + 1]) for i in range(n_ops)]
            if min(totals) >= 0:
                return {"start": start, "ops": ops}

    def text(self, inst):
        return f"Evaluate {inst['start']}{_signed(inst['ops'])}."

    def answer(self, inst):
        return str(inst["start"] + sum(inst["ops"]))

    def summary(self, inst, key):
        expr, ans = self.text(inst)[len("Evaluate ") : -1], self.answer(inst)
        if key == "running_total":
            return f"Left to right, {expr} = {ans}."
        gains = sum(o for o in inst["ops"] if o > 0)
        losses = -sum(o for o in inst["ops"] if o < 0)
        return f"Gains {gains}, losses {losses}: {inst['start']}+{gains}-{losses} = {ans}."

    def steps(self, inst, key):
        ops = inst["ops"]
        lines = []
        if key == "gains_then_losses":  # reorder: every gain, then every loss, then run
            ops = [o for o in ops if o > 0] + [o for o in ops if o < 0]
            lines.append(str(inst["start"]) + _signed(ops))
        total = inst["start"]
        for o in ops:
            lines.append(f"{total}{o:+d}={total + o}")
            total += o
        return lines


class RemainderFamily(Family):
    """Remainder by 3 or 9: `Remainder of 4738 divided by 9?` (analog of number theory).

    OOD: numbers with 7-9 digits instead of 3-4.
    """

    name, analog = "remainder", "math-number-theory"
    strategy_keys = ("digit_sum", "reduce_as_you_go")

    def sample(self, rng, ood):
        n_digits = rng.randint(7, 9) if ood else rng.randint(3, 4)
        digits = [rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(n_digits - 1)]
        return {"number": int("".join(map(str, digits))), "divisor": rng.choice((3, 9))}

    def text(self, inst):
        return f"Remainder of {inst['number']} divided by {inst['divisor']}?"

    def answer(self, inst):
        return str(inst["number"] % inst["divisor"])

    def summary(self, inst, key):
        n, ans = inst["number"], self.answer(inst)
        if key == "digit_sum":
            return f"{n} has digit sum {sum(map(int, str(n)))}, so it leaves {ans}."
        return f"Reducing digit by digit, {n} leaves {ans}."

    @staticmethod
    def _fold(s: int) -> str:
        return "+".join(str(s)) + f"={sum(map(int, str(s)))}"

    def steps(self, inst, key):
        digits = str(inst["number"])
        total, lines = int(digits[0]), []
        for d in digits[1:]:
            line = f"{total}+{d}={total + int(d)}"
            total += int(d)
            if key == "reduce_as_you_go" and total >= 10:
                line += ", " + self._fold(total)
                total = sum(map(int, str(total)))
            lines.append(line)
        while total >= 10:
            lines.append(self._fold(total))
            total = sum(map(int, str(total)))
        m = inst["divisor"]
        lines.append(f"{total} mod {m}={total % m}")
        return lines


class MulFamily(Family):
    """Multi-digit times one digit: `Compute 487*6.` (analog of MATH arithmetic).

    OOD: 5-6 digit multiplicands instead of 2-3.
    """

    name, analog = "mul", "math-arithmetic"
    strategy_keys = ("column_carry", "products_then_carries")

    def sample(self, rng, ood):
        n_digits = rng.randint(5, 6) if ood else rng.randint(2, 3)
        a = rng.randint(10 ** (n_digits - 1), 10**n_digits - 1)
        return {"a": a, "b": rng.randint(2, 9)}

    def text(self, inst):
        return f"Compute {inst['a']}*{inst['b']}."

    def answer(self, inst):
        return str(inst["a"] * inst["b"])

    def summary(self, inst, key):
        a, b, ans = inst["a"], inst["b"], self.answer(inst)
        if key == "column_carry":
            return f"Column by column, {a}*{b} = {ans}."
        products = ", ".join(str(int(d) * b) for d in str(a))
        return f"Digit products {products} combine to {ans}."

    def steps(self, inst, key):
        digits, b = [int(c) for c in str(inst["a"])], inst["b"]
        lines = [", ".join(f"{d}*{b}={d * b}" for d in digits)] if key == "products_then_carries" else []
        carry, suffix = 0, ""
        for i in range(len(digits) - 1, -1, -1):  # right to left
            p = digits[i] * b
            step = f"{digits[i]}*{b}={p}" if key == "column_carry" else f"{p}"
            if i < len(digits) - 1:
                step += f", {p}+{carry}={p + carry}" if key == "column_carry" else f"+{carry}={p + carry}"
            p += carry
            if i:
                suffix, carry = f"{p % 10}{suffix}", p // 10
                lines.append(f"{step} -> {suffix} c{carry}")
            else:  # the leftmost digit: write the whole column result
                suffix = f"{p}{suffix}"
                lines.append(f"{step} -> {suffix}")
        return lines


class LinearFamily(Family):
    """Undo a chain of operations: `Find x: x -> *3 -> +7 -> -2 -> 23.` (analog of algebra).

    OOD: 4-5 operations with up to two multiplications (three-digit values) instead of 2-3
    operations with at most one and values below 100.
    """

    name, analog = "linear", "math-algebra"
    strategy_keys = ("undo_backwards", "inverse_chain")
    INVERSE: ClassVar[dict[str, str]] = {"+": "-", "-": "+", "*": "/"}

    def sample(self, rng, ood):
        n_ops, max_mul, cap = (rng.randint(4, 5), 2, 999) if ood else (rng.randint(2, 3), 1, 99)
        while True:
            x = rng.randint(2, 12)
            ops, value = [], x
            for k in rng.sample(range(2, 10), n_ops):  # distinct constants
                kind = rng.choice("*+-" if sum(o[0] == "*" for o in ops) < max_mul else "+-")
                value = value * k if kind == "*" else value + k if kind == "+" else value - k
                ops.append([kind, k])
                if not 0 < value <= cap:
                    break
            else:
                return {"x": x, "ops": ops, "result": value}

    def text(self, inst):
        chain = "".join(f" -> {kind}{k}" for kind, k in inst["ops"])
        return f"Find x: x{chain} -> {inst['result']}."

    def answer(self, inst):
        return str(inst["x"])

    def _inverses(self, inst) -> list[str]:
        return [f"{self.INVERSE[kind]}{k}" for kind, k in reversed(inst["ops"])]

    def summary(self, inst, key):
        ans, result = self.answer(inst), inst["result"]
        if key == "undo_backwards":
            return f"Undoing from the end, {result} goes back to x = {ans}."
        return f"Inverse chain {', '.join(self._inverses(inst))} on {result} gives x = {ans}."

    def steps(self, inst, key):
        inverses = self._inverses(inst)
        lines = ["undo: " + ", ".join(inverses)] if key == "inverse_chain" else []
        value = inst["result"]
        for inv in inverses:  # the last operation first
            kind, k = inv[0], int(inv[1:])
            new = value // k if kind == "/" else value + k if kind == "+" else value - k
            lines.append(f"{value}{inv}={new}")
            value = new
        return lines


def drill(rng: random.Random) -> tuple[str, str]:
    """One background arithmetic fact as (problem text, worked answer): `Compute 58-7.` -> `58-7=51`.

    The one-step operations the strategies are made of (a number plus or minus a digit, a
    digit product, an exact division, a digit's remainder by three or nine): what a real base
    model knows before it meets any strategy. Used only in pretraining, never as a problem.
    """
    kind = rng.choice(("+", "-", "*", "/", "mod"))
    if kind == "+":
        a, b = rng.randint(0, 99), rng.randint(0, 9)
        expr, value = f"{a}+{b}", a + b
    elif kind == "-":
        b = rng.randint(1, 9)
        a = rng.randint(b, 99)
        expr, value = f"{a}-{b}", a - b
    elif kind == "*":
        a, b = rng.randint(0, 9), rng.randint(2, 9)
        expr, value = f"{a}*{b}", a * b
    elif kind == "/":
        b, value = rng.randint(2, 9), rng.randint(1, 20)
        expr = f"{b * value}/{b}"
    else:
        a, m = rng.randint(1, 9), rng.choice((3, 9))
        expr, value = f"{a} mod {m}", a % m
    return f"Compute {expr}.", _lines([f"{expr}={value}"], value)


FAMILIES: dict[str, Family] = {f.name: f for f in (SumFamily(), RemainderFamily(), MulFamily(), LinearFamily())}


def get_family(name: str) -> Family:
    """The family called `name`; a clear error lists the known ones."""
    if name not in FAMILIES:
        raise KeyError(f"unknown toy family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]
