"""Shared helpers: slugs (gid), MDO unit maths, time formatting, script skeleton."""
