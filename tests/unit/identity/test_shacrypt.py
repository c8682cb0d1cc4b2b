"""SHA-crypt against vectors from the specification and from glibc/libxcrypt crypt(3)."""

from __future__ import annotations

import pytest

from s3dsi.identity import shacrypt

VECTORS = [
    # from "Unix crypt using SHA-256 and SHA-512" (Drepper), test vectors section
    ("Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
    ("Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdc"
                     "bYEdFCoEOfaS35inz1"),
    ("Hello world!", "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"),
    ("Hello world!", "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/Urj"
                     "mM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
    ("a very much longer text to encrypt.  This one even stretches over morethan one line.",
     "$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1"),
    # produced with crypt(3) of libxcrypt
    ("", "$5$rounds=1000$empty$FXha5uPEquvEe/9u4fbnefx.bVTs6qjD6G8cTcCjKH/"),
    ("correct horse battery staple", "$6$rounds=2500$0123456789abcdef$YRB9CECpjUTKDugnT58wS/42hUnXjuWsnZG"
                                     "lL5vNJu.ZiURG5GtEs17CuRr5ECsNBCxl0fqClgkRY2bMx7SxZ0"),
    ("ünïcødé ✓", "$5$rounds=3000$u$iGOQJuTLovOsil5/.ZqAkb76iohXE5M5KIOS6pgU/v6"),
    ("x" * 100, "$6$rounds=1000$long$UKr4Zfo/ioVs7ChCCo/HpRNwy62wUYJzMfjfnrhaNuuZ4jcEz7UOrqYs2abMMxSoAb/SK9"
                "FT8jLnsLoRPJVBg."),
]


@pytest.mark.parametrize(("password", "stored"), VECTORS)
def test_vectors(password: str, stored: str) -> None:
    assert shacrypt.sha_crypt(password, stored) == stored
    assert shacrypt.verify(password, stored)
    assert not shacrypt.verify(password + "!", stored)
    assert not shacrypt.verify(password[:-1], stored) or password == ""


def test_long_salt_is_cut_to_sixteen_characters() -> None:
    computed = shacrypt.sha_crypt("Hello world!", "$5$rounds=10000$saltstringsaltstring")
    assert computed == VECTORS[2][1]


def test_low_rounds_are_raised_to_the_minimum() -> None:
    assert shacrypt.parse_hash("$6$rounds=10$ab").rounds == 1000
    assert shacrypt.sha_crypt("x", "$6$rounds=10$ab").startswith("$6$rounds=1000$ab$")


@pytest.mark.parametrize("stored", [
    "", "$1$abc$def", "$6$", "$6$salt$tooshort", "$5$rounds=x$salt$", "$6$rounds=5000",
    "$6$sa:lt$" + "a" * 86, "$6$salt$" + "!" * 86, "plain",
])
def test_malformed_hashes_never_verify(stored: str) -> None:
    assert not shacrypt.verify("anything", stored)
