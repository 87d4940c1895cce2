"""The troubleshooting assistant: answers from a documentation folder (see README.md)."""
