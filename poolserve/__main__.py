from poolserve.cli import app

app()
