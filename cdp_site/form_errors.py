"""Service errors onto Django forms: services raise `{field: [messages]}`, forms show them in place."""


def add_errors_to_form(form, errors: dict[str, list[str]], field_for=None) -> None:
    """Put a service's `{field: [messages]}` on a Django form: on the field when the form has it,
    otherwise as a form-wide error. `field_for(field, message)` may redirect a message."""
    for field, messages in errors.items():
        for message in messages:
            target = field_for(field, message) if field_for else field
            form.add_error(target if target in form.fields else None, message)
