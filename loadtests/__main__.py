from loadtests.cli import app

app()
