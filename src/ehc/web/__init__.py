"""Server-rendered pages for residents (Jinja2 templates, one stylesheet, a little vanilla JS).

``pages.mount(app)`` adds the routes and ``/static``; ``i18n`` picks the language and provides
``t(key)``; ``security`` holds the CSRF token and the card cookie.
"""
