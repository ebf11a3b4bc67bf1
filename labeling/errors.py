"""Errors the labeling services raise; each interface maps `status_code` to its HTTP answer."""


class LabelingError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(LabelingError):
    status_code = 400
    code = "invalid"


class NotFound(LabelingError):
    status_code = 404
    code = "not_found"


class Forbidden(LabelingError):
    status_code = 403
    code = "forbidden"


class Conflict(LabelingError):
    status_code = 409
    code = "conflict"


class InstructionsUnread(Conflict):
    """The labeler has not acknowledged the project's current instructions version."""

    code = "instructions_unread"


class PayloadTooLarge(LabelingError):
    status_code = 413
    code = "too_large"


class ExistingAccounts(InvalidInput):
    """An import names accounts that exist and were not listed: `accounts` maps each username to the
    lines ("line 3") that name it, for a page to show; the message names them too."""

    code = "existing_accounts"

    def __init__(self, message: str, *, accounts: dict[str, list[str]]):
        super().__init__(message, field="labelers_existing")
        self.accounts = accounts
