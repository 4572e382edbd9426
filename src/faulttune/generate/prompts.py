"""Every prompt faulttune sends to a model, worded in one place, and the chat message types.

Generation and training render conversations through the same functions, so the text a model is
trained on is exactly the text it sees at evaluation time. The assistant turn of a code answer
always starts with ``CODE_PREFILL`` and ends with the closing fence (see :func:`code_response`).
Every generation backend renders and tokenises prompts with :func:`render_prompts` and
:func:`encode_prompts`, so all of them see identical inputs.

This module is the bottom of :mod:`faulttune.generate`: it imports nothing else from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

# A chat message {"role": ..., "content": ...}; a conversation is a list of them.
Message = dict[str, str]
Conversation = list[Message]

CODE_PREFILL = "```python\n"
CODE_FENCE_END = "```"

SYSTEM_PROMPT = "You are a careful Python programmer. You answer with code in one markdown block."

_SOLVE = (
    "Complete the following Python task. Reply with the whole self-contained program, including "
    "the imports and the function signature, in one ```python code block.\n\n{task}"
)
_FIX = (
    "The program below should solve this task:\n\n{task}\n\nProgram:\n```python\n{program}\n```\n\n"
    "Running its tests gave this output:\n```\n{feedback}\n```\n\n"
    "Find the bug and reply with the whole fixed program in one ```python code block."
)
_TEACHER = (
    "Here is a programming task and a correct solution.\n\nTask:\n{instruction}\n\n"
    "Correct solution:\n```python\n{correct}\n```\n\n"
    "Write a version of this solution that is functionally INCORRECT but stays as similar as "
    "possible to it: change as little code as you can (for example one operator, one value, one "
    "variable or one missing step) so that it gives wrong results. Keep the names, the layout and "
    "the comments. Do not explain and do not mark the change. Reply with the whole program in one "
    "```python code block."
)
# IterPref's task synthesis (docs/methods.md §3.1 step 1; our own wording of the paper's Fig. 10):
# a commented solution and ONE unittest file that imports it, each in a block named by <file>,
# then the files and the packages as JSON (read by faulttune.codeflow.testfiles).
_SYNTHESIZE = (
    "You are a Python expert. Solve the task below with clear, commented code, and write unit "
    "tests for your solution.\n\nTask:\n{instruction}\n\n"
    "Answer in exactly this format:\n"
    "<file>solution.py</file>\n```python\n# the solution module\n```\n"
    "<file>test.py</file>\n```python\n# ONE unittest file: `from solution import ...` (or "
    "`import solution`), unittest.TestCase classes with test_ methods, runnable directly "
    "(no external files, no network)\n```\n"
    '<json>{{"file_names": ["solution.py", "test.py"], "packages": []}}</json>\n'
    "List under \"packages\" every package outside the standard library that the files import."
)
# IterPref's LLM judge (§3.1 step 5): does the pair differ in logic, not only in form?
_JUDGE = (
    "Two versions of a Python program for this task:\n\n{instruction}\n\n"
    "Version A:\n```python\n{chosen}\n```\n\nVersion B:\n```python\n{rejected}\n```\n\n"
    "Do A and B differ in their logic (what the program computes), and not only in variable "
    "names, formatting, whitespace, blank lines or comments? Explain in at most two sentences, "
    "then give your verdict on the last line: one word, YES or NO."
)
# CCT's sequence-level samples (docs/methods.md §1.1): our own paraphrases, chosen per pair by a seeded index.
BUGFIX_TEMPLATES = (
    "This code has a bug:\n```python\n{buggy}\n```\nFix the bug and give the corrected code.",
    (
        "Here is a piece of Python code with a mistake in it:\n```python\n{buggy}\n```\n"
        "Return the code with the mistake fixed."
    ),
    (
        "The following function does not behave as intended.\n```python\n{buggy}\n```\n"
        "Find the error and write the correct version."
    ),
    "Debug this program and reply with the repaired code only:\n```python\n{buggy}\n```",
)


def _conversation(user: str) -> Conversation:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def solve_messages(task_prompt: str) -> Conversation:
    """Ask for a solution of a task (a HumanEval prompt, an MBPP text, an instruction)."""
    return _conversation(_SOLVE.format(task=task_prompt.strip("\n")))


def fix_messages(task_prompt: str, program: str, feedback: str) -> Conversation:
    """Ask for a fixed version of ``program`` given its execution output (CodeFlow)."""
    return _conversation(
        _FIX.format(task=task_prompt.strip("\n"), program=program.strip("\n"), feedback=feedback)
    )


def teacher_messages(instruction: str, correct: str) -> Conversation:
    """FGit's teacher prompt: a functionally incorrect but maximally similar variant."""
    return _conversation(_TEACHER.format(instruction=instruction.strip("\n"), correct=correct.strip("\n")))


def synthesis_messages(instruction: str) -> Conversation:
    """IterPref's task synthesis: a solution and a unittest file for one instruction."""
    return _conversation(_SYNTHESIZE.format(instruction=instruction.strip("\n")))


def judge_messages(instruction: str, chosen: str, rejected: str) -> Conversation:
    """IterPref's judge: does the pair differ in logic (answer YES or NO on the last line)?"""
    return _conversation(_JUDGE.format(instruction=instruction.strip("\n"),
                                       chosen=chosen.strip("\n"), rejected=rejected.strip("\n")))


def bugfix_messages(buggy: str, template_index: int) -> Conversation:
    """CCT's sequence-level sample: buggy code in, fixed code out."""
    template = BUGFIX_TEMPLATES[template_index % len(BUGFIX_TEMPLATES)]
    return _conversation(template.format(buggy=buggy.strip("\n")))


def code_response(code: str) -> str:
    """The assistant text of a code answer: pre-fill + code + closing fence."""
    return CODE_PREFILL + code.strip("\n") + "\n" + CODE_FENCE_END


def render_prompt(tokenizer: Any, messages: Conversation, prefill: str = CODE_PREFILL) -> str:
    """The generation prompt text: chat template with the assistant turn opened and pre-filled."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + prefill


def render_prompts(
    tokenizer: Any, conversations: Sequence[Conversation], prefill: str
) -> list[str]:
    """The generation prompt of every conversation (:func:`render_prompt` each)."""
    return [render_prompt(tokenizer, conv, prefill) for conv in conversations]


def encode_prompts(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of rendered prompts; the chat template already holds every special token."""
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def render_training_text(
    tokenizer: Any, messages: Conversation, response: str
) -> tuple[str, int, int]:
    """Full training text and the character span ``[start, end)`` of ``response`` in it.

    The text is the chat template of ``messages`` plus the assistant ``response``; the prompt part is
    byte-identical to :func:`render_prompt` without pre-fill, so training matches generation.
    """
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": response}], tokenize=False
    )
    if not full.startswith(prompt):
        raise ValueError("chat template does not extend the generation prompt with the answer")
    start = len(prompt)
    end = full.find(response, start)
    if end != start:
        raise ValueError("chat template altered the assistant response text")
    return full, start, start + len(response)


def render_training_example(
    tokenizer: Any, messages: Conversation, response: str
) -> tuple[list[int], int]:
    """Token ids of the full training text and the index of the first response token.

    The prompt is tokenised on its own and the response appended token by token boundary, so the
    prompt tokens are exactly those generation sees.
    """
    full, start, _ = render_training_text(tokenizer, messages, response)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = enc["input_ids"]
    offsets = enc["offset_mapping"]
    response_start = next((i for i, (s, _) in enumerate(offsets) if s >= start), len(ids))
    return ids, response_start


def template_hash() -> str:
    """A digest of every template above, for the run manifest."""
    parts = [SYSTEM_PROMPT, _SOLVE, _FIX, _TEACHER, _SYNTHESIZE, _JUDGE, *BUGFIX_TEMPLATES, CODE_PREFILL, CODE_FENCE_END]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]
