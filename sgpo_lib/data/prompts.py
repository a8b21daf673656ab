"""Prompt builders shared by the toy world and real benchmarks (sgpo-method.md, Notation).

`prompt(x)` is the unguided prompt: the problem and an answer-format instruction.
`prompt(x, s)` is the guided prompt: the strategy block, then the same problem text. Both
are chat messages rendered through the tokenizer's own chat template, so a real
instruct model and a toy student see their native format.
"""

from __future__ import annotations

from ..core.records import Problem, Strategy

DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def unguided_messages(problem: Problem, instruction: str = DEFAULT_INSTRUCTION) -> list[dict]:
    """Chat messages for `prompt(x)`."""
    content = f"{problem.problem}\n{instruction}" if instruction else problem.problem
    return [{"role": "user", "content": content}]


def guided_messages(
    problem: Problem, strategy: Strategy, instruction: str = DEFAULT_INSTRUCTION
) -> list[dict]:
    """Chat messages for `prompt(x, s)`: the strategy block precedes the problem."""
    body = unguided_messages(problem, instruction)[0]["content"]
    return [{"role": "user", "content": f"{strategy.render()}\n\nProblem: {body}"}]


def render(tokenizer, messages: list[dict]) -> str:
    """Render messages with the tokenizer's chat template, ready for the assistant turn."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
