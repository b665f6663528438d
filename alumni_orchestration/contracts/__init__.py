"""SendGrid's published OpenAPI specs (vendored from ../shared/contracts) and validation against them."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPEC_DIR = Path(__file__).parent / "sendgrid"
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_CATEGORIES = 10
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_SEND_AHEAD_SECONDS = 72 * 3600


@cache
def mail_send_schema() -> dict[str, Any]:
    """The PostMailSend request schema, with the spec's known quirk fixed: custom_args is an object."""
    spec = json.loads((SPEC_DIR / "tsg_mail_v3.json").read_text())
    body = spec["paths"]["/v3/mail/send"]["post"]["requestBody"]
    if "$ref" in body:
        body = spec["components"]["requestBodies"][body["$ref"].rsplit("/", 1)[-1]]
    schema = copy.deepcopy(body["content"]["application/json"]["schema"])
    schema["components"] = spec.get("components", {})
    if "custom_args" in schema.get("properties", {}):
        schema["properties"]["custom_args"] = {"type": ["object", "string"]}
    return schema


def mail_send_errors(body: Any, now: float) -> list[dict[str, Any]]:
    """SendGrid-style errors ({message, field, help}) for a mail/send body; empty when valid."""
    validator = jsonschema.Draft202012Validator(mail_send_schema())
    errors = [
        {"message": error.message[:300], "field": ".".join(str(p) for p in error.absolute_path) or None,
         "help": "https://docs.sendgrid.com/api-reference/mail-send/mail-send"}
        for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    ]
    if errors or not isinstance(body, dict):
        return errors or [{"message": "The request body must be a JSON object.", "field": None, "help": None}]
    personalizations = body.get("personalizations") or []
    recipients = sum(len(p.get("to") or []) + len(p.get("cc") or []) + len(p.get("bcc") or []) for p in personalizations)

    def err(message: str, field: str) -> None:
        errors.append({"message": message, "field": field, "help": None})

    if len(personalizations) > MAX_PERSONALIZATIONS:
        err("The personalizations array must have 1000 or fewer items.", "personalizations")
    if recipients > MAX_RECIPIENTS:
        err("The total number of recipients must be 1000 or fewer.", "personalizations")
    if len(body.get("categories") or []) > MAX_CATEGORIES:
        err("You may not have more than 10 categories per request.", "categories")
    template = body.get("template_id")
    if template is not None and not str(template).startswith("d-") and body.get("personalizations") and any(
            "dynamic_template_data" in p for p in personalizations):
        err("Dynamic template data requires a dynamic template id starting with 'd-'.", "template_id")
    if template is None and not body.get("content"):
        err("Unless a valid template_id is provided, the content parameter is required.", "content")
    for field, value in [("send_at", body.get("send_at"))] + [
            (f"personalizations.{i}.send_at", p.get("send_at")) for i, p in enumerate(personalizations)]:
        if value is not None and int(value) > now + MAX_SEND_AHEAD_SECONDS:
            err("You cannot schedule a send more than 72 hours in advance.", field)
    for field, args in [("custom_args", body.get("custom_args"))] + [
            (f"personalizations.{i}.custom_args", p.get("custom_args")) for i, p in enumerate(personalizations)]:
        if args is not None and len(json.dumps(args).encode()) >= MAX_CUSTOM_ARGS_BYTES:
            err("custom_args must be less than 10,000 bytes.", field)
    return errors
