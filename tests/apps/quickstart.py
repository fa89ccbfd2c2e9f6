"""A quick-start app as a user writes it: ``StackAuth()`` at module level, imported by a test
before the test's fixtures set ``STACK_*``."""

from fastapi import Depends, FastAPI

from fastapi_stack_auth import StackAuth, StackUser, current_user

stack = StackAuth()
app = FastAPI()
stack.init_app(app)


@app.get("/me")
async def me(user: StackUser = Depends(current_user)) -> dict[str, str]:
    return {"id": user.id}
