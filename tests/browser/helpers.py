"""What the browser tests share: the factories' password and a login by keyboard."""

PASSWORD = "pw-for-tests-123"  # tests/factories.py UserFactory's


def login(page, base: str, username: str, password: str = PASSWORD) -> None:
    """Log in on the login page by keyboard and land on the project list."""
    page.goto(f"{base}/accounts/login/")
    page.focus("input[name=username]")  # autofocus, made certain: a background tab may not get it
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/")
