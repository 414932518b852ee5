"""``sam local invoke`` against a local stack: images, docker network, emulators and env file.

``stack`` brings it up and invokes functions, ``images`` makes the docker images (pulled, or built
from Debian packages offline), ``emulators`` is what runs inside the emulator container.
"""
