from poolserve.loadtests.cli import app

app()
