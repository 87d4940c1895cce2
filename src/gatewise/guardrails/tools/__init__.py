"""The tool guard: `middleware.ToolGuardMiddleware` shows the model only registered, permitted
tools and checks every call it makes before anyone can act on it. The tools themselves
(registry, MCP, call validation, the loop) are `gatewise.tools`; schemas are checked by
`gatewise.types.jsonschema`.

Import from the module, not from here: the middleware imports `gatewise.tools`, and keeping this
file empty means loading the guard package never drags the tool package in half loaded."""
