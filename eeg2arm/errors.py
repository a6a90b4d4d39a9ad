"""The one exception type for mistakes a user can fix (bad files, shapes, flags)."""


class UserInputError(ValueError):
    """A problem with the user's input. The message says what was wrong and how to fix it.

    The CLI turns it into one line and exit code 2; the service into a 400 response.
    """
