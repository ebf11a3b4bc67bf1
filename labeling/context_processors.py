from labeling.roles import PERM_RESEARCH, user_role


def roles(request) -> dict:
    user = getattr(request, "user", None)
    if user is None:
        return {}
    return {"user_role": user_role(user), "is_researcher": user.is_authenticated and user.has_perm(PERM_RESEARCH)}
