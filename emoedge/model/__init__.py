"""Networks: backbone registry and weight loading (`backbones`), fusion (`fusion`), the three-branch model (`net`)."""
