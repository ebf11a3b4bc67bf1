from labeling.roles import is_researcher, user_role


def roles(request) -> dict:
    user = getattr(request, "user", None)
    if user is None:
        return {}
    return {"user_role": user_role(user), "is_researcher": is_researcher(user)}
