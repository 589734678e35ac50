"""Plain requests the offline model understands, parsed from a user's message.

A message may hold several requests joined by "and" (or "then", ";"); a piece that is not a
request on its own belongs to the one before it, so "add a task to buy salt and pepper" is one
task. Parsing is a pure function of the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Status = Literal["all", "pending", "completed"]


@dataclass(frozen=True, slots=True)
class TaskRef:
    """How the user named a task: by number, by words to match against titles, or as "it"
    (`recent`): the task the conversation just dealt with."""

    text: str
    task_id: int | None = None
    recent: bool = False


@dataclass(frozen=True, slots=True)
class AddTask:
    title: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ListTasks:
    """A listing; `count` when the user asked how many, so the answer leads with the number."""

    status: Status = "all"
    count: bool = False


@dataclass(frozen=True, slots=True)
class CompleteTask:
    ref: TaskRef


@dataclass(frozen=True, slots=True)
class DeleteTask:
    ref: TaskRef


@dataclass(frozen=True, slots=True)
class RenameTask:
    ref: TaskRef
    new_title: str


@dataclass(frozen=True, slots=True)
class DescribeTask:
    """A new description for a task, keeping its title."""

    ref: TaskRef
    description: str


@dataclass(frozen=True, slots=True)
class MarkImportant:
    """Flag a task as important (or, with `important=False`, take the flag off)."""

    ref: TaskRef
    important: bool = True


@dataclass(frozen=True, slots=True)
class DeleteCompleted:
    """Every completed task goes: people clear out what they finished in one request."""


@dataclass(frozen=True, slots=True)
class CurrentTime:
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class Calculate:
    expression: str


@dataclass(frozen=True, slots=True)
class Echo:
    message: str


Request = (
    AddTask
    | ListTasks
    | CompleteTask
    | DeleteTask
    | RenameTask
    | DescribeTask
    | MarkImportant
    | DeleteCompleted
    | CurrentTime
    | Calculate
    | Echo
)
TaskChange = (
    AddTask
    | CompleteTask
    | DeleteTask
    | RenameTask
    | DescribeTask
    | MarkImportant
    | DeleteCompleted
)

_I = re.IGNORECASE
_SEPARATOR = re.compile(
    r"(\s*(?:[;\n]\s*(?:then\s+|also\s+)?|,?\s+and\s+(?:then|also)\s+|,?\s+and\s+|,?\s+then\s+)\s*)",
    _I,
)
_POLITE_START = re.compile(
    r"^(?:(?:hey|hi|hello|ok|okay|so|now)\b[,!.]?\s*)?"
    r"(?:(?:please|pls|kindly)\s+)?"
    r"(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?)?"
    r"(?:i(?:'d|\s+would)\s+like\s+(?:you\s+)?to\s+|i\s+want\s+(?:you\s+)?to\s+|"
    r"i\s+need\s+you\s+to\s+|help\s+me\s+|go\s+ahead\s+and\s+|just\s+|let'?s\s+)?",
    _I,
)
_POLITE_END = re.compile(
    r"(?:[\s,]+for\s+me)?[\s,]*(?:please|thanks|thank\s+you)?[\s.!?]*$",
    _I,
)
_QUOTES = "\"'“”‘’`"

_ECHO = re.compile(r"^(?:echo|repeat\s+after\s+me|repeat)\s*:?\s+(?P<message>.+)$", _I | re.S)
_ADD = (
    re.compile(
        r"^(?:add|create|make|new|put)\s+(?:a\s+|an\s+|another\s+|one\s+|the\s+)?(?:new\s+)?"
        r"(?:task|todo|to-do|reminder|item)(?P<plural>s)?\b\s*"
        r"(?:(?:to|for|called|named|titled|saying)\b\s*|[:\-]\s*)?(?P<title>.+)$",
        _I,
    ),
    re.compile(
        r"^(?:add|put)\s+(?P<title>.+?)\s+(?:to|on)\s+(?:my\s+|the\s+)?"
        r"(?:task\s*|to-?do\s*)?(?:list|tasks)$",
        _I,
    ),
    re.compile(
        r"^(?:remind\s+me\s+to|remember\s+to|don'?t\s+let\s+me\s+forget\s+to)\s+(?P<title>.+)$", _I
    ),
    re.compile(r"^(?:todo|to-do|task)\s*:\s*(?P<title>.+)$", _I),
    re.compile(
        r"^(?:add|put)\s+(?:these|the\s+following)(?P<plural>)(?:\s+(?:to|on)\s+(?:my\s+|the\s+)?"
        r"(?:task\s*|to-?do\s*)?(?:list|tasks))?\s*:\s*(?P<title>.+)$",
        _I,
    ),
)
# Said as a need rather than a command ("I need to pay the bill"): tried after everything else,
# so "I need to see my tasks" still lists them.
_LOOSE_ADD = (
    re.compile(
        r"^(?:i\s+(?:really\s+|still\s+|also\s+)?(?:need|have|ought|got)\s+to|i\s+(?:must|should)|"
        r"i(?:'ve|\s+have)?\s+(?:got\s+to|gotta)|don'?t\s+forget(?:\s+to)?|"
        r"note\s+to\s+self\s*:?|(?:add|put|create|new)\b\s*:?)\s+(?P<title>.+)$",
        _I,
    ),
    re.compile(
        r"^(?:jot|write|note|put)\s+down\s+(?P<title>.+?)"
        r"(?:\s+(?:as\s+a\s+(?:task|to-?do|reminder)|on\s+my\s+(?:list|to-?do\s+list)))?$",
        _I,
    ),
)
# After an added task, "and post the letter" is a second task when it starts with a doing word.
_ACTION_START = re.compile(
    r"^(?:to\s+)?(?:buy|call|phone|ring|post|pay|send|email|e-mail|text|write|clean|tidy|pick|"
    r"book|get|take|walk|feed|water|wash|fix|repair|renew|return|check|cook|read|submit|"
    r"schedule|order|go|visit|bring|mail|print|sign|file|prepare|make|collect|drop|sort|"
    r"vacuum|mow|charge|review|plan|organi[sz]e|pack|study|practi[cs]e|learn|meet|reply|"
    r"answer|water|iron|shop|grab|finish|do|see|ask|tell|remind|invite|renew|sell|move)\b",
    _I,
)
_DESCRIPTION = re.compile(
    r"^(?P<title>.+?),?\s+with\s+(?:the\s+|a\s+)?(?:description|details?|notes?)\s*:?\s+"
    r"(?P<description>.+)$",
    _I,
)
_DESCRIBE = (
    re.compile(
        r"^(?:change|update|set|edit|make)\s+the\s+(?:description|details?|notes?)\s+"
        r"(?:of|for|on)\s+(?P<ref>.+?)\s+(?:to|as)\s*:?\s+(?P<text>.+)$",
        _I,
    ),
    re.compile(
        r"^(?:change|update|set|edit)\s+(?P<ref>.+?)(?:'s)?\s+(?:description|details?|notes?)"
        r"\s+(?:to|as)\s*:?\s+(?P<text>.+)$",
        _I,
    ),
    re.compile(
        r"^(?:add|put|attach|give)\s+(?:a\s+|the\s+)?(?:note|description|details?)\s+"
        r"(?:to|on|for)\s+(?P<ref>.+?)\s*(?::|saying|that\s+says)\s*(?P<text>.+)$",
        _I,
    ),
    re.compile(r"^describe\s+(?P<ref>.+?)\s+as\s+(?P<text>.+)$", _I),
)
_FINISHED = (
    r"(?:completed|complete|finished|done|checked[\s-]+off|ticked[\s-]+off|crossed[\s-]+off)"
)
_DELETE_COMPLETED = re.compile(
    r"^(?:delete|remove|clear(?:\s+out)?|clean\s+(?:up|out)|drop|erase|purge|trash|"
    r"get\s+rid\s+of|throw\s+(?:away|out)|wipe(?:\s+out)?)\s+"
    r"(?:all\s+)?(?:of\s+)?(?:the\s+|my\s+)?"
    r"(?:" + _FINISHED + r"(?:\s+(?:ones|tasks?|items|to-?dos|stuff))?"
    r"|(?:tasks?|ones|items|to-?dos|everything|anything|stuff|whatever)\s+(?:that\s+|which\s+)?"
    r"(?:(?:are|were|is|i'?ve|i\s+have|i|i'm|i\s+am|i've\s+already|i\s+already)\s+)?"
    r"(?:already\s+)?(?:been\s+)?(?:marked\s+(?:as\s+)?)?(?:with\s+)?" + _FINISHED + r")"
    r"(?:\s+(?:ones|tasks?|items))?"
    r"(?:\s+from\s+(?:my\s+|the\s+)?(?:task\s*|to-?do\s*)?(?:list|tasks))?$",
    _I,
)
_RENAME = (
    re.compile(
        r"^(?:change|update|edit|set)\s+the\s+(?:title|name)\s+(?:of|for|on)\s+(?P<ref>.+?)\s+"
        r"(?:to|as)\s+(?P<new>.+)$",
        _I,
    ),
    re.compile(r"^(?:rename|retitle)\s+(?P<ref>.+?)\s+(?:to|as|into)\s+(?P<new>.+)$", _I),
    re.compile(r"^(?:change|update|edit)\s+(?P<ref>.+?)\s+to\s+(?P<new>.+)$", _I),
)
_IMPORTANT = (
    re.compile(
        r"^(?:un)?(?:mark|flag|set|make|tag)\s+(?P<ref>.+?)\s+(?:as\s+)?(?:not\s+)?"
        r"(?:important|urgent|(?:a\s+|high[\s-]+)?priority)$",
        _I,
    ),
    re.compile(r"^(?:un)?star\s+(?P<ref>.+)$|^(?:de)?prioriti[sz]e\s+(?P<ref2>.+)$", _I),
    re.compile(
        r"^(?!(?:what|which|who|why|how|where|when)\b)(?P<ref>.+?)\s+is\s+(?:not\s+|no\s+longer\s+)?(?:very\s+|really\s+)?"
        r"(?:important|urgent|a\s+priority)(?:\s+any\s*more)?$",
        _I,
    ),
)
_NOT_IMPORTANT = re.compile(
    r"^(?:un(?:mark|flag|set|tag|star)|deprioriti[sz]e)\b|\b(?:not|no\s+longer)\b", _I
)
_COMPLETE = (
    re.compile(
        r"^(?:mark|set|flag|check|tick|cross)\s+(?P<ref>.+?)\s+(?:as\s+)?"
        r"(?:done|complete|completed|finished|off)$",
        _I,
    ),
    re.compile(
        r"^(?:complete|finish|check\s+off|tick\s+off|cross\s+off|close)\s+(?P<ref>.+?)"
        r"(?:\s+off)?(?:\s+(?:my|the)\s+list)?$",
        _I,
    ),
    re.compile(
        r"^i(?:'ve|\s+have)?\s+(?:just\s+|already\s+|now\s+|finally\s+)?"
        r"(?:finished|completed|done)\s+(?:with\s+)?(?P<ref>.+)$",
        _I,
    ),
    # "I bought the milk, you can check that off": the deed names the task
    re.compile(
        r"^i\s+(?:just\s+|already\s+|finally\s+)?\w+\s+(?P<ref>.+?)\s*[,;.!-]+\s*"
        r"(?:so\s+|you\s+can\s+|please\s+|now\s+)?(?:check|tick|cross|mark)\s+(?:it|that)\s+"
        r"(?:off|done|as\s+(?:done|complete|completed|finished))$",
        _I,
    ),
    re.compile(
        r"^(?:cross|tick|check)\s+(?P<ref>.+?)\s+off\s+(?:my\s+|the\s+)?(?:task\s*|to-?do\s*)?"
        r"(?:list|tasks)$",
        _I,
    ),
    re.compile(
        r"^(?:i'?m\s+|i\s+am\s+)?(?:all\s+)?(?:done|finished|through)\s+with\s+(?P<ref>.+)$", _I
    ),
    re.compile(
        r"^(?!(?:what|which|how|are|is|show|list|any|do)\b)(?P<ref>.+?)(?:\s+(?:is|are|has\s+been)|'s)\s+"
        r"(?:now\s+|all\s+)?(?:done|finished|complete|completed)(?:\s+now)?$",
        _I,
    ),
)
_DELETE = (
    re.compile(
        r"^(?:delete|remove|drop|cancel|erase|scrap|scratch|trash|ditch|"
        r"forget(?:\s+about)?|get\s+rid\s+of|never\s*mind(?:\s+about)?)\s+(?P<ref>.+?)"
        r"(?:\s+from\s+(?:my\s+|the\s+)?(?:task\s*|to-?do\s*)?(?:list|tasks))?$",
        _I,
    ),
    re.compile(
        r"^take\s+(?P<ref>.+?)\s+off\s+(?:my\s+|the\s+)?(?:task\s*|to-?do\s*)?"
        r"(?:list|tasks)$",
        _I,
    ),
    re.compile(
        r"^i\s+(?:don'?t|do\s+not|no\s+longer)\s+(?:need|have|want)\s+to\s+(?P<ref>.+?)"
        r"(?:\s+any\s*more)?$",
        _I,
    ),
)
_LIST = (
    re.compile(
        r"^(?:what|which|show|list|display|view|see|get|give|tell|print|how\s+many|do\s+i\s+have|"
        r"any|are\s+there|read|check|remind\s+me\s+(?:of|what))\b"
        r".*\b(?:tasks?|to-?dos?|list|ones|items)\b",
        _I,
    ),
    re.compile(
        r"^(?:my\s+)?(?:all\s+|pending\s+|open\s+|completed\s+|done\s+)?(?:tasks|to-?dos)$", _I
    ),
    re.compile(
        r"\bwhat\s+(?:(?:do|should|must)\s+)?i\s+(?:still\s+|else\s+)?(?:have\s+|need\s+|got\s+)?"
        r"(?:left\s+)?to\s+do\b",
        _I,
    ),
    re.compile(
        r"(?:^|\bme\s+)(?:what(?:'s|\s+is|s)?|anything|is\s+there\s+anything)\s+(?:else\s+|still\s+)?"
        r"(?:left|remaining|pending|outstanding|next|open|on\s+my\s+(?:plate|list|agenda))\b",
        _I,
    ),
    re.compile(r"^what\s+have\s+i\s+(?:already\s+)?(?:done|completed|finished)\b", _I),
    re.compile(r"^how\s+many\b", _I),
    re.compile(r"^(?:do|have)\s+i\s+(?:have\s+|got\s+)?(?:anything|something)\b", _I),
    re.compile(r"^(?:show|list|display)(?:\s+(?:me\s+)?(?:everything|it\s+all|all|them))?$", _I),
    re.compile(r"^what\s+(?:should|shall|can)\s+i\s+do\b", _I),
)
_COUNT = re.compile(r"^how\s+many\b|\bcount\b|\bnumber\s+of\b", _I)
_PENDING_WORDS = re.compile(
    r"\b(?:pending|open|incomplete|unfinished|outstanding|remaining|left|to\s+do|undone|not\s+done|"
    r"still|not\s+yet|haven'?t|yet\s+to|next|on\s+my\s+plate|"
    r"not\s+finished|not\s+completed)\b",
    _I,
)
_COMPLETED_WORDS = re.compile(r"\b(?:completed|complete|done|finished|closed)\b", _I)
_TIME = (
    re.compile(r"^what\s+(?:time|day|date)\b(?:\s+of\s+the\s+week)?\s+is\s+(?:it|today)\b", _I),
    re.compile(r"^(?:tell\s+me\s+|do\s+you\s+know\s+)?what\s+(?:time|day)\s+it\s+is\b", _I),
    re.compile(
        r"^(?:(?:what(?:'s|\s+is)?|tell\s+me|give\s+me|show(?:\s+me)?)\s+)?(?:the\s+)?"
        r"(?:current\s+|local\s+|today'?s\s+)?(?:time|date)\b",
        _I,
    ),
    re.compile(r"^(?:current|local)\s+(?:time|date)\b", _I),
)
_TIMEZONE = re.compile(r"\bin\s+(?P<zone>[A-Za-z]+(?:/[A-Za-z0-9_+\-]+)+|UTC|GMT)\b", _I)
# Places people name instead of a zone ("the time in Tokyo"): the best-known cities.
_CITIES = {
    "london": "Europe/London",
    "paris": "Europe/Paris",
    "berlin": "Europe/Berlin",
    "madrid": "Europe/Madrid",
    "rome": "Europe/Rome",
    "amsterdam": "Europe/Amsterdam",
    "moscow": "Europe/Moscow",
    "dubai": "Asia/Dubai",
    "delhi": "Asia/Kolkata",
    "mumbai": "Asia/Kolkata",
    "singapore": "Asia/Singapore",
    "hong kong": "Asia/Hong_Kong",
    "shanghai": "Asia/Shanghai",
    "beijing": "Asia/Shanghai",
    "seoul": "Asia/Seoul",
    "tokyo": "Asia/Tokyo",
    "sydney": "Australia/Sydney",
    "auckland": "Pacific/Auckland",
    "new york": "America/New_York",
    "chicago": "America/Chicago",
    "denver": "America/Denver",
    "los angeles": "America/Los_Angeles",
    "san francisco": "America/Los_Angeles",
    "toronto": "America/Toronto",
    "mexico city": "America/Mexico_City",
    "sao paulo": "America/Sao_Paulo",
    "são paulo": "America/Sao_Paulo",
}
_CITY = re.compile(r"\bin\s+(?P<city>" + "|".join(_CITIES) + r")\b", _I)
_CALCULATE = re.compile(
    r"^(?:calculate|calc|compute|evaluate|eval|solve)\s*:?\s+(?P<expression>.+)$", _I
)
_QUESTION = re.compile(r"^(?:what(?:'s|\s+is|s)|how\s+much\s+is)\s+(?P<expression>.+)$", _I)
_MATH = re.compile(r"(?:sqrt|[\d\s.+\-*/^%()])+")
_OPERATOR_WORDS = (
    (re.compile(r"^\s*the\s+", _I), ""),
    (re.compile(r"\bsquare\s+root\s+of\s+(?P<n>[\d.]+)", _I), r"sqrt(\g<n>)"),
    (re.compile(r"(?P<p>[\d.]+)\s*(?:%|percent)\s+of\s+(?P<n>[\d.]+)", _I), r"\g<p>/100*\g<n>"),
    (re.compile(r"\bto\s+the\s+power\s+of\b", _I), "^"),
    (re.compile(r"\bsquared\b", _I), "^2"),
    (re.compile(r"\b(?:multiplied\s+by|times)\b", _I), "*"),
    (re.compile(r"\b(?:divided\s+by|over)\b", _I), "/"),
    (re.compile(r"\bplus\b", _I), "+"),
    (re.compile(r"\bminus\b", _I), "-"),
    (re.compile(r"\bmod(?:ulo)?\b", _I), "%"),
    (re.compile(r"(?<=\d)\s*[x×]\s*(?=[\d(])", _I), "*"),
    (re.compile(r"÷"), "/"),
)
_TASK_NUMBER = re.compile(r"^(?:task|todo|to-do|item|number|no\.?)?\s*#?\s*(?P<id>\d+)$", _I)
_REF_START = re.compile(r"^(?:the|my|a|that)\s+", _I)
_REF_END = re.compile(r"\s+(?:task|todo|to-do|item|one|reminder)$", _I)


def parse_requests(text: str) -> list[Request]:
    """Every request in `text`, in order; empty when nothing is recognised."""
    tokens = _SEPARATOR.split(text.strip())
    pieces: list[tuple[str, list[Request]]] = []
    for index in range(0, len(tokens), 2):
        piece = tokens[index]
        requests = _parse_piece(piece)
        if not requests and pieces and _another_task(pieces[-1][1], piece):
            pieces.append((piece, [AddTask(_clean(_POLITE_END.sub("", piece, count=1)))]))
        elif not requests and pieces:
            joined = pieces[-1][0] + tokens[index - 1] + piece
            # A piece that means nothing alone continues the previous one, if that still parses.
            pieces[-1] = (joined, _parse_piece(joined) or pieces[-1][1])
        else:
            pieces.append((piece, requests))
    return [request for _, requests in pieces for request in requests]


def _another_task(before: list[Request], piece: str) -> bool:
    """Whether `piece` is a second task after an added one ("add buy stamps and post the
    letter"), rather than the rest of its title ("add a task to buy salt and pepper")."""
    if not before or not isinstance(before[-1], AddTask) or before[-1].description:
        return False
    return bool(_ACTION_START.match(piece.strip()))


def _parse_piece(piece: str) -> list[Request]:
    start = _POLITE_START.sub("", piece.strip(), count=1)
    echo = _ECHO.match(start)
    if echo:
        return [Echo(echo["message"].strip())]
    text = _POLITE_END.sub("", start, count=1).strip()
    if not text:
        return []
    for parse in (
        _important,
        _add,
        _describe,
        _delete_completed,
        _rename,
        _complete,
        _delete,
        _time,
        _calculate,
        _list,
        _loose_add,
    ):
        requests = parse(text)
        if requests:
            return requests
    return []


def _add(text: str) -> list[Request]:
    for pattern in _ADD:
        match = pattern.match(text)
        if not match:
            continue
        title, description = _title_and_description(match["title"])
        if not title:
            return []
        if match.groupdict().get("plural") is not None:
            titles = [_clean(part) for part in re.split(r",\s*(?:and\s+)?|\s+and\s+", title)]
            return [AddTask(part) for part in titles if part]
        return [AddTask(title, description)]
    return []


def _loose_add(text: str) -> list[Request]:
    for pattern in _LOOSE_ADD:
        match = pattern.match(text)
        if match:
            title, description = _title_and_description(match["title"])
            # "I need to see my tasks" is a wish to look, not a task to add
            return _list(title) or ([AddTask(title, description)] if title else [])
    return []


def _describe(text: str) -> list[Request]:
    for pattern in _DESCRIBE:
        match = pattern.match(text)
        if match:
            description = _clean(match["text"])
            if description:
                return [DescribeTask(_task_ref(match["ref"]), description)]
    return []


def _important(text: str) -> list[Request]:
    for pattern in _IMPORTANT:
        match = pattern.match(text)
        if match:
            ref = match["ref"] or match.groupdict().get("ref2") or ""
            important = not _NOT_IMPORTANT.search(text)
            return [MarkImportant(r, important) for r in _task_refs(ref)]
    return []


def _delete_completed(text: str) -> list[Request]:
    return [DeleteCompleted()] if _DELETE_COMPLETED.match(text) else []


def _title_and_description(raw: str) -> tuple[str, str | None]:
    match = _DESCRIPTION.match(raw)
    if match:
        return _clean(match["title"]), _clean(match["description"]) or None
    return _clean(raw), None


def _rename(text: str) -> list[Request]:
    for pattern in _RENAME:
        match = pattern.match(text)
        if match:
            new_title = _clean(match["new"])
            if new_title:
                return [RenameTask(_task_ref(match["ref"]), new_title)]
    return []


def _complete(text: str) -> list[Request]:
    for pattern in _COMPLETE:
        match = pattern.match(text)
        if match:
            return [CompleteTask(ref) for ref in _task_refs(match["ref"])]
    return []


def _delete(text: str) -> list[Request]:
    for pattern in _DELETE:
        match = pattern.match(text)
        if match:
            return [DeleteTask(ref) for ref in _task_refs(match["ref"])]
    return []


def _list(text: str) -> list[Request]:
    if not any(pattern.search(text) for pattern in _LIST):
        return []
    count = bool(_COUNT.search(text))
    if _PENDING_WORDS.search(text):
        return [ListTasks("pending", count)]
    if _COMPLETED_WORDS.search(text):
        return [ListTasks("completed", count)]
    return [ListTasks("all", count)]


def _time(text: str) -> list[Request]:
    if not any(pattern.match(text) for pattern in _TIME):
        return []
    zone = _TIMEZONE.search(text)
    if zone:
        return [CurrentTime(zone["zone"])]
    city = _CITY.search(text)
    return [CurrentTime(_CITIES[city["city"].lower()] if city else None)]


def _calculate(text: str) -> list[Request]:
    explicit = _CALCULATE.match(text)
    if explicit:
        return [Calculate(_math(explicit["expression"]))]
    question = _QUESTION.match(text)
    if question:
        expression = _math(question["expression"])
        if _MATH.fullmatch(expression) and re.search(r"\d", expression):
            return [Calculate(expression)]
    return []


def _math(expression: str) -> str:
    for pattern, symbol in _OPERATOR_WORDS:
        expression = pattern.sub(symbol, expression)
    return expression.strip().rstrip("=").strip()


_NUMBERS = re.compile(
    r"^(?:the\s+)?(?:tasks|items|numbers)\s+#?\d+(?:\s*(?:,|&|\band\b|,\s*and\b)\s*#?\d+)+$", _I
)


def _task_refs(raw: str) -> list[TaskRef]:
    """One reference, or several when the user lists numbers ("tasks 1 and 3")."""
    cleaned = _clean(raw)
    if _NUMBERS.match(cleaned):
        return [TaskRef(f"task {n}", int(n)) for n in re.findall(r"\d+", cleaned)]
    return [_task_ref(raw)]


_PRONOUN = re.compile(
    r"^(?:it|that|this|(?:that|this|the\s+last|the\s+new)\s+(?:one|task|item|to-?do))$", _I
)


def _task_ref(raw: str) -> TaskRef:
    if _PRONOUN.match(_clean(raw)):
        return TaskRef(_clean(raw), recent=True)
    text = _REF_END.sub("", _REF_START.sub("", _clean(raw)))
    text = _clean(text)
    number = _TASK_NUMBER.match(text)
    return TaskRef(text, int(number["id"]) if number else None)


def _clean(text: str) -> str:
    return text.strip().strip(_QUOTES).strip().rstrip(".!?,;:").strip().strip(_QUOTES).strip()
