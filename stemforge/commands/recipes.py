"""``stemforge recipes [show NAME]``: the recipes shipped with stemforge, usable by name."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("recipes", help="list the packaged recipes (usable by name wherever a "
                       "recipe is taken, e.g. `stemforge generate musdb_vocals ...`), or print one")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list",
                   help="list (default) or show NAME")
    p.add_argument("name", nargs="?", metavar="NAME", help="the recipe to show")
    return p


def run(args) -> int:
    from ..errors import StemforgeError
    from ..mixing import packaged

    if args.action == "show":
        if not args.name:
            raise StemforgeError("recipes show: give a recipe NAME (`stemforge recipes` lists "
                                 "them)")
        print(packaged.find(args.name), end="")
        return 0
    if args.name:
        raise StemforgeError(f"recipes: unexpected {args.name!r}; did you mean "
                             f"`stemforge recipes show {args.name}`?")
    names = packaged.names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {packaged.describe(name)}")
    print(f"\nuse one by name (stemforge generate {names[0]} --index ROOT ...), print it with "
          "`stemforge recipes show NAME`, change fields with --set FIELD=VALUE")
    return 0
