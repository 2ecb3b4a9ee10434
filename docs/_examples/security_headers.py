"""Security headers for every page of an app: the recipe of ``docs/security.rst``."""

from flask import Flask, request

#: Start strict, then add the origins your pages really load from (images, scripts...).
CSP = "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"


def add_security_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)  # a view's own policy wins
        headers.setdefault("X-Frame-Options", "DENY")  # browsers without frame-ancestors
        headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.is_secure:  # behind a TLS proxy: ProxyFix, see the deployment page
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
