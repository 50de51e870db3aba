"""Prompt templates: front matter parsing and validation, placeholder substitution."""

from __future__ import annotations

import pytest
from nexus.prompts.template import ArgumentError, TemplateError, parse

REVIEW = """---
name: review-pr
description: Review a pull request
arguments:
  - name: pr
    description: the pull request number
  - name: focus
    required: false
---
Review pull request #{{pr}}.
Look first at {{ focus }}.
"""


def test_front_matter_gives_name_description_and_arguments():
    t = parse(REVIEW, "prompts/review.md")
    assert t.name == "review-pr"
    assert t.description == "Review a pull request"
    assert [(a.name, a.description, a.required) for a in t.arguments] == [
        ("pr", "the pull request number", True),
        ("focus", None, False),
    ]
    assert t.body == "Review pull request #{{pr}}.\nLook first at {{ focus }}."
    assert t.path == "prompts/review.md"


def test_name_defaults_to_the_file_stem_and_arguments_may_be_plain_names():
    t = parse("---\narguments: [topic]\n---\nExplain {{topic}}.\n", "lib/explain.md")
    assert t.name == "explain"
    assert [(a.name, a.required) for a in t.arguments] == [("topic", True)]


def test_a_file_without_front_matter_is_a_prompt_without_arguments():
    t = parse("Summarise the last commit.\n", "summarise.md")
    assert (t.name, t.description, t.arguments, t.body) == (
        "summarise",
        None,
        (),
        "Summarise the last commit.",
    )


def test_substitution_fills_each_placeholder_once():
    t = parse(REVIEW)
    assert (
        t.render({"pr": "42", "focus": "the tests"}) == "Review pull request #42.\nLook first at the tests."
    )
    # An optional argument left out is empty; a value holding {{...}} is not substituted again.
    assert t.render({"pr": "{{focus}}"}) == "Review pull request #{{focus}}.\nLook first at ."


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "missing required argument(s): pr"),
        ({"pr": ""}, "missing required argument(s): pr"),
        ({"pr": "1", "colour": "red"}, "unknown argument(s): colour"),
    ],
)
def test_bad_arguments_are_refused_with_what_is_wrong(values, message):
    with pytest.raises(ArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(REVIEW).render(values)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("---\nname: Bad Name\n---\nhi", "name: 'Bad Name' must be"),
        ("---\nname: [unclosed\n---\nhi", "front matter is not valid YAML"),
        ("---\n- a\n- b\n---\nhi", "front matter must be a mapping"),
        ("---\nname: x\nhi", "never ends"),
        ("---\nname: x\n---\n\n", "body"),
        ("---\nname: x\n---\nUse {{thing}}.", r"undeclared arguments: \{\{thing\}\}"),
        ("---\narguments: [{name: a, requird: true}]\n---\n{{a}}", "unknown keys requird"),
        ("---\narguments: [a, a]\n---\n{{a}}", "declared twice"),
        ("---\narguments: [{name: a, required: maybe}]\n---\n{{a}}", "must be true or false"),
        ("---\ndescription: [1]\n---\nhi", "description: must be text"),
    ],
)
def test_invalid_templates_say_what_to_fix(text, message):
    with pytest.raises(TemplateError, match=message):
        parse(text, "x.md")


def test_content_hash_ignores_the_path_but_not_the_body():
    a, b = parse(REVIEW, "a.md"), parse(REVIEW, "b/c.md")
    assert a.content_hash == b.content_hash
    assert parse(REVIEW.replace("#{{pr}}", "{{pr}}")).content_hash != a.content_hash
