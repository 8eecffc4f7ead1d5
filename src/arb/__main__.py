from arb.cli import main

main()
