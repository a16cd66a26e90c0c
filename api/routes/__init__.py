"""The API's read routes, one router per resource."""
